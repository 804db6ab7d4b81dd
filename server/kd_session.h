// One WinDbg (KD) connection: a raw serial byte stream over TCP, as QEMU's
// "-serial tcp:...,server" gives WinDbg ("windbg -k com:ipport=PORT,port=
// HOST"). kdcom framing and the packet id / acknowledge / resend state
// machine come from protocol/kd; the KdDispatcher in the middle turns
// packets into target operations. Outgoing data packets wait in a queue:
// kdcom has one unacknowledged packet at a time.
#pragma once
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "protocol/kd/framing.h"
#include "protocol/kd/session_state.h"
#include "server/backlog.h"
#include "server/debug_session.h"
#include "server/kd_dispatcher.h"
#include "server/output_queue.h"
#include "server/transport.h"

namespace dbgstub {

class KdSession : public DebugSession, public std::enable_shared_from_this<KdSession> {
 public:
  KdSession(asio::io_context& io, std::unique_ptr<Transport> transport, Target& target, bool log_packets,
            SessionEvents events);
  void start() override;
  void set_handshake_timeout(asio::io_context& io, std::chrono::seconds t) override;
  void close_when_flushed() override;
  void abandon() override;
  void on_stop(const StopEvent& ev) override;
  bool heard_from_client() const override { return heard_from_client_; }

  // How long a sent packet waits for its ACK before it is sent again.
  static constexpr std::chrono::milliseconds kResendAfter{1500};
  // Debug prints the host does not acknowledge are given up after this many
  // tries (kdcom does the same); state changes and replies are not.
  static constexpr int kMaxPrintTries = 5;

 private:
  void read();
  void on_bytes(std::size_t n);
  void handle_events();
  void handle_event(const kd::KdEvent& ev);
  void queue(uint16_t type, kd::Bytes payload);
  void pump();
  void arm_resend();
  void write_raw(const kd::Bytes& bytes);
  void shutdown();

  std::unique_ptr<Transport> transport_;
  OutputQueue out_;  // bounded, as for GDB
  kd::KdFramer framer_;
  kd::SessionState state_;
  KdDispatcher dispatcher_;
  bool log_packets_;
  SessionEvents events_;
  std::deque<std::pair<uint16_t, kd::Bytes>> queue_;  // data packets not yet sent
  asio::steady_timer resend_timer_;
  int tries_ = 0;
  bool closing_ = false;
  bool closed_ = false;
  std::array<char, 16384> buf_{};
  Backlog<kd::KdEvent> backlog_;
  std::optional<asio::steady_timer> handshake_timer_;
  bool heard_from_client_ = false;
};

}  // namespace dbgstub

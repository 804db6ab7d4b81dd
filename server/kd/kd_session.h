// One WinDbg (KD) connection: a raw serial byte stream over TCP, as QEMU's
// "-serial tcp:...,server" gives WinDbg ("windbg -k com:ipport=PORT,port=
// HOST"). kdcom framing and the packet id / acknowledge / resend state
// machine come from protocol/kd; the KdDispatcher in the middle turns
// packets into target operations. Outgoing data packets wait in a queue:
// kdcom has one unacknowledged packet at a time.
#pragma once
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/kd/framing.h"
#include "protocol/kd/session_state.h"
#include "server/kd/kd_dispatcher.h"
#include "server/plumbing/stream_session.h"

namespace dbgstub {

class KdSession : public StreamSession<KdSession, kd::KdEvent> {
 public:
  KdSession(asio::io_context& io, std::unique_ptr<Transport> transport, Target& target, bool log_packets,
            SessionEvents events);
  void start() override;
  void on_stop(const StopEvent& ev) override;

  // How long a sent packet waits for its ACK before it is sent again.
  static constexpr std::chrono::milliseconds kResendAfter{1500};
  // Debug prints the host does not acknowledge are given up after this many
  // tries (kdcom does the same); state changes and replies are not.
  static constexpr int kMaxPrintTries = 5;

 private:
  friend class StreamSession<KdSession, kd::KdEvent>;
  void feed(std::string_view bytes, std::vector<kd::KdEvent>& events);
  void handle_event(const kd::KdEvent& ev);
  void on_close() { resend_timer_.cancel(); }
  void queue(uint16_t type, kd::Bytes payload);
  void pump();
  void arm_resend();
  void write_bytes(const kd::Bytes& bytes);

  kd::KdFramer framer_;
  kd::SessionState state_;
  KdDispatcher dispatcher_;
  bool log_packets_;
  std::deque<std::pair<uint16_t, kd::Bytes>> queue_;  // data packets not yet sent
  asio::steady_timer resend_timer_;
  int tries_ = 0;
};

}  // namespace dbgstub

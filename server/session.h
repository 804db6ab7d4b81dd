// One debugger connection: bytes in, framing and acknowledgements, the
// dispatcher in the middle, framed replies out.
#pragma once
#include <asio/steady_timer.hpp>
#include <chrono>
#include <optional>

#include "server/transport.h"
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "protocol/rsp/framing.h"
#include "server/backlog.h"
#include "server/debug_session.h"
#include "server/dispatcher.h"
#include "server/output_queue.h"

namespace dbgstub {

class Session : public DebugSession, public std::enable_shared_from_this<Session> {
 public:
  Session(std::unique_ptr<Transport> transport, Target& target, DispatcherConfig config, bool log_packets,
          SessionEvents events);
  // A client that sends no packet within this time after connecting is
  // dropped, so a silent connection can't hold the target (0 = never).
  void set_handshake_timeout(asio::io_context& io, std::chrono::seconds t) override;
  void start() override;
  // Closes after everything queued has been written.
  void close_when_flushed() override;
  void abandon() override;
  void on_stop(const StopEvent& ev) override;
  // False for a connection that never sent a packet (not a debugger yet).
  bool heard_from_client() const override { return heard_from_client_; }
  bool extended() const override { return dispatcher_.extended(); }
  bool non_stop() const override { return dispatcher_.non_stop(); }
  const Dispatcher& dispatcher() const { return dispatcher_; }

 private:
  void read();
  void on_bytes(std::size_t n);
  void handle_events();
  void handle_event(rsp::FrameEvent& e);
  void send(std::string payload);
  void notify(std::string payload);
  void write_raw(std::string bytes);
  void shutdown();

  std::unique_ptr<Transport> transport_;
  // A client that stops reading: past OutputQueue's bound, hang up.
  OutputQueue out_;
  rsp::Framer framer_;
  Dispatcher dispatcher_;
  bool log_packets_;
  SessionEvents events_;
  bool ack_mode_ = true;
  std::string last_packet_;
  bool closing_ = false;
  bool closed_ = false;
  std::array<char, 16384> buf_{};
  Backlog<rsp::FrameEvent> backlog_;
  std::optional<asio::steady_timer> handshake_timer_;
  bool heard_from_client_ = false;
};

}  // namespace dbgstub

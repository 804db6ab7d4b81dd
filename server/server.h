// Listens for debuggers and joins one session at a time to one target.
// Decides when dbgstub ends: --once, "monitor exit", or (without --multi)
// when nothing is left to debug.
#pragma once
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>

#include "server/options.h"
#include "server/debug_session.h"
#include "server/session.h"
#include "server/termination_schedule.h"
#include "targets/target.h"

namespace dbgstub {

class Server {
 public:
  Server(asio::io_context& io, const Options& options, Target& target);
  Status listen();
  Status serve_stdio();
  uint16_t port() const { return port_; }
  // Release the target (kill launched, detach attached) and stop the loop.
  void shutdown();
  // After the loop has stopped: closes a session still open and runs what
  // that leaves to run (its aborted reads, which own it), so the session is
  // gone before the target it refers to.
  void finish();

 private:
  void accept();
  void start_session(std::unique_ptr<Transport> transport);
  void refuse_busy(asio::ip::tcp::socket socket);
  void refuse_busy_kd(asio::ip::tcp::socket socket);
  void on_session_closed();
  void maybe_finish();
  void stop_when_released();

  asio::io_context& io_;
  Options options_;
  Target& target_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer release_timer_;
  std::shared_ptr<DebugSession> session_;
  // Kernel mode: processes scheduled for termination; outlives sessions.
  TerminationSchedule terminations_;
  void release_target();
  uint16_t port_ = 0;
  bool exiting_ = false;
  int release_polls_ = 0;
};

}  // namespace dbgstub

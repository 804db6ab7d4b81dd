// Listens for debuggers and joins one session at a time to one target.
// Decides when dbgstub ends: --once, "monitor exit", or (without --multi)
// when nothing is left to debug.
#pragma once
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/app/options.h"
#include "server/plumbing/front_door.h"
#include "server/plumbing/debug_session.h"
#include "server/gdb/session.h"
#include "server/termination_schedule.h"
#include "targets/target.h"

namespace dbgstub {

// Resolves host, binds host:port and listens; connections wait in the
// backlog until a Server accepts them. Apart from Server so that main can
// bind before it starts or attaches to a program, as gdbserver: a bad
// address or a port in use fails before any process is created.
Result<asio::ip::tcp::acceptor> bind_listener(asio::io_context& io, const std::string& host, uint16_t port);

// A server may listen for both front ends at once (a lab VM with "listen"
// and "kd"): GDB's and WinDbg's clients then share the one session slot, so
// one debugger at a time is served per target whichever protocol it speaks,
// and the target and its termination schedule are the same for both.
//
// With a FrontDoor (kernel mode), listening sockets and connections live on
// the front door's thread and reach this server, which runs on `io` (the
// target's thread), through relays; without one, everything is on `io`.
class Server {
 public:
  Server(asio::io_context& io, const Options& options, Target& target, FrontDoor* door = nullptr);
  ~Server();
  // Listens on options.host:port for the front end options.kd names, and
  // says so ("Listening on port N") unless `announce` is false.
  Status listen(bool announce = true);
  // The same on an acceptor bind_listener made for options.host:port.
  Status listen(asio::ip::tcp::acceptor bound, bool announce = true);
  // Also listens on host:port for WinDbg (KD), in front of the same target.
  Status listen_kd(const std::string& host, uint16_t port, bool announce = true);
  // The lines listen() prints: `prefix` (a lab VM's "name: ") before each.
  void announce(const std::string& prefix = "") const;
  std::string kd_line(const std::string& prefix) const;
  Status serve_stdio();
  // Until then, connections are accepted (and, through a front door, their
  // packets acknowledged) but wait: their first requests are handled once
  // the target is ready, not raced against its start-up. Ready at once
  // unless hold_until_ready() was called first.
  void hold_until_ready() { ready_ = false; }
  void set_ready();
  uint16_t port() const { return port_; }
  uint16_t kd_port() const { return kd_port_; }
  // Kernel mode's scheduled terminations (main records them in the VM's
  // state file, server/lab/vm_state.h).
  TerminationSchedule& terminations() { return terminations_; }
  // Whether a debugger is connected, and its address ("127.0.0.1:40412").
  bool has_session() const { return session_ != nullptr; }
  std::optional<std::string> debugger_address() const;
  // Lets the target go (a machine runs again) and carries out the pending
  // terminations: what a debugger's leaving does, and the control socket's
  // kill of a VM no debugger holds. `outcome` as TerminationSchedule::run.
  void release_target(TerminationSchedule::Outcome outcome = nullptr);
  // Stops accepting debuggers (from any thread; at once on the front door's).
  void close_listeners();
  // Release the target (kill launched, detach attached) and stop the loop.
  void shutdown();
  // After the loop has stopped: closes a session still open and runs what
  // that leaves to run (its aborted reads, which own it), so the session is
  // gone before the target it refers to.
  void finish();

 private:
  struct Listener {
    asio::ip::tcp::acceptor acceptor;
    bool kd;
  };
  // Accepts on a bound acceptor from now on; returns its port.
  uint16_t serve_listener(asio::ip::tcp::acceptor acceptor, bool kd);
  void accept(Listener& l);
  // A connection, on this server's thread (from either kind of listener).
  void on_accepted(std::unique_ptr<Transport> transport, bool kd, const std::string& remote);
  void start_session(std::unique_ptr<Transport> transport, bool kd);
  // Why a second client is refused: "" when the connected one speaks the
  // same protocol, else which front end it is on.
  std::string busy_reason(bool kd) const;
  void refuse_busy(std::unique_ptr<Transport> transport, const std::string& remote, const std::string& why);
  void refuse_busy_kd(std::unique_ptr<Transport> transport, const std::string& remote, const std::string& why);
  void on_session_closed();
  bool keeps_program_for_next_debugger(bool was_non_stop) const;
  void maybe_finish();
  void stop_when_released();

  asio::io_context& io_;
  Options options_;
  Target& target_;
  FrontDoor* door_;
  bool ready_ = true;
  struct Waiting {
    std::unique_ptr<Transport> transport;
    bool kd;
    std::string remote;
  };
  std::vector<Waiting> waiting_;  // accepted before the target was ready
  std::vector<std::unique_ptr<Listener>> listeners_;
  asio::steady_timer release_timer_;
  std::shared_ptr<DebugSession> session_;
  bool session_kd_ = false;  // the connected debugger speaks KD
  // Kernel mode: processes scheduled for termination; outlives sessions.
  TerminationSchedule terminations_;
  std::string session_peer_;  // the connected debugger's "ADDRESS:PORT"
  uint16_t port_ = 0;
  uint16_t kd_port_ = 0;
  std::string kd_host_;
  bool exiting_ = false;
  int release_polls_ = 0;
};

}  // namespace dbgstub

#include "server/plumbing/server.h"

#include <spdlog/spdlog.h>

#include <asio/write.hpp>
#include <array>
#include <iostream>

#include "protocol/kd/framing.h"
#include "protocol/kd/structs.h"
#include "protocol/rsp/framing.h"
#include "server/client_gate.h"
#include "server/kd/kd_session.h"

namespace dbgstub {

Server::Server(asio::io_context& io, const Options& options, Target& target, FrontDoor* door)
    : io_(io), options_(options), target_(target), door_(door), release_timer_(io) {
  target_.set_stop_handler([this](const StopEvent& ev) {
    if (session_) session_->on_stop(ev);
    else maybe_finish();
  });
}

// The front door's accept handlers refer to this server: its acceptors are
// closed (and so their handlers done with it) before it goes.
Server::~Server() { close_listeners(); }

Result<asio::ip::tcp::acceptor> bind_listener(asio::io_context& io, const std::string& host, uint16_t port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    // A name, not a number: resolve it (gdbserver's wording on failure).
    asio::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty())
      return make_error(22, host + ":" + std::to_string(port) + ": cannot resolve name: " +
                                (ec ? ec.message() : "no address"));
    addr = results.begin()->endpoint().address();
  }
  asio::ip::tcp::endpoint ep(addr, port);
  asio::ip::tcp::acceptor acceptor(io);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(ec.value(), "Can't bind address: " + ec.message() + ".");
  return acceptor;
}

Status Server::listen(bool announce) {
  auto bound = bind_listener(door_ ? door_->io() : io_, options_.host, options_.port);
  if (!bound) return bound.error();
  return listen(std::move(*bound), announce);
}

Status Server::listen(asio::ip::tcp::acceptor bound, bool announce) {
  port_ = serve_listener(std::move(bound), options_.kd);
  if (options_.kd) {
    kd_port_ = port_;
    kd_host_ = options_.host;
  }
  if (announce) this->announce();
  return ok_status();
}

Status Server::listen_kd(const std::string& host, uint16_t port, bool announce) {
  auto bound = bind_listener(door_ ? door_->io() : io_, host, port);
  if (!bound) return bound.error();
  kd_port_ = serve_listener(std::move(*bound), true);
  kd_host_ = host;
  if (announce) std::cerr << kd_line("") << std::flush;
  return ok_status();
}

std::string Server::kd_line(const std::string& prefix) const {
  return prefix + "KD (WinDbg) front end: windbg -k com:ipport=" + std::to_string(kd_port_) + ",port=" + kd_host_ +
         "\n";
}

// One write for all lines: a lab's VMs start on threads of their own.
void Server::announce(const std::string& prefix) const {
  std::string lines;
  // GDB's testsuite (and our tests) wait for exactly this line.
  if (port_) lines += prefix + "Listening on port " + std::to_string(port_) + "\n";
  if (kd_port_) lines += kd_line(prefix);
  std::cerr << lines << std::flush;
}

uint16_t Server::serve_listener(asio::ip::tcp::acceptor acceptor, bool kd) {
  asio::error_code ec;
  auto local = acceptor.local_endpoint(ec);
  if (!local.address().is_loopback())
    spdlog::warn("listening on {}:{}, reachable from other machines: whoever connects can read and write the "
                 "target's memory and registers{}; prefer 127.0.0.1 and SSH port forwarding (README, Security)",
                 local.address().to_string(), local.port(),
                 options_.allow_run || options_.allow_attach || options_.policy.run || options_.policy.attach
                     ? ", and start or attach to programs"
                     : "");
  listeners_.push_back(std::make_unique<Listener>(Listener{std::move(acceptor), kd}));
  Listener& l = *listeners_.back();
  // The acceptor is the front door's: only its thread touches it.
  if (door_) door_->post([this, &l] { accept(l); });
  else accept(l);
  return local.port();
}

void Server::accept(Listener& l) {
  l.acceptor.async_accept([this, &l](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::warn("accept: {}", ec.message());
      return;
    }
    if (refuse_unlisted_client(options_.clients, socket, l.kd ? "KD" : "GDB")) return accept(l);
    asio::error_code e2;
    auto ep = socket.remote_endpoint(e2);
    std::string remote = e2 ? "?" : ep.address().to_string() + ", port " + std::to_string(ep.port());
    if (door_) {
      // On the front door's thread: relayed (and read) from now on, handed
      // to this server's thread.
      auto t = make_relay(*door_, std::move(socket), io_, l.kd ? Relayed::Bytes : Relayed::Rsp,
                          DispatcherConfig{}.packet_size);
      asio::post(io_, [this, t = std::move(t), kd = l.kd, remote]() mutable {
        on_accepted(std::move(t), kd, remote);
      });
    } else {
      on_accepted(std::make_unique<TcpTransport>(std::move(socket)), l.kd, remote);
    }
    accept(l);
  });
}

void Server::on_accepted(std::unique_ptr<Transport> transport, bool kd, const std::string& remote) {
  if (exiting_) return;  // closes it
  if (!ready_) {
    waiting_.push_back({std::move(transport), kd, remote});
    return;
  }
  if (session_) {
    if (kd) refuse_busy_kd(std::move(transport), remote, busy_reason(true));
    else refuse_busy(std::move(transport), remote, busy_reason(false));
    return;
  }
  std::cerr << "Remote debugging from host " << remote << (kd && !options_.kd ? " (KD)" : "") << std::endl;
  // `remote` is in gdbserver's words ("ADDRESS, port N"), which the
  // console line above must keep; the control socket wants ADDRESS:N.
  session_peer_ = remote;
  if (auto at = remote.rfind(", port "); at != std::string::npos)
    session_peer_ = remote.substr(0, at) + ":" + remote.substr(at + 7);
  start_session(std::move(transport), kd);
}

void Server::set_ready() {
  if (ready_) return;
  ready_ = true;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) on_accepted(std::move(w.transport), w.kd, w.remote);
}

std::string Server::busy_reason(bool kd) const {
  if (kd == session_kd_) return "";
  return session_kd_ ? " (a WinDbg/KD client, on port " + std::to_string(kd_port_) + ")"
                     : " (a GDB client, on port " + std::to_string(port_) + ")";
}

void Server::start_session(std::unique_ptr<Transport> transport, bool kd) {
  DispatcherConfig cfg;
  cfg.multi = options_.multi;
  // A list in the configuration allows, restricted to the list.
  cfg.allow_run = options_.allow_run || options_.policy.run.has_value();
  cfg.allow_attach = options_.allow_attach || options_.policy.attach.has_value();
  cfg.policy = options_.policy;
  cfg.disable_randomization = options_.disable_randomization;
  cfg.default_program = options_.program;
  cfg.debug_children = options_.debug_children;
  cfg.disabled_packets = options_.disabled_packets;
  cfg.wrapper = options_.wrapper;
  cfg.allow_file_write = options_.allow_file_write || options_.policy.files_write;
  cfg.redirect_stdio = options_.stdio;
  cfg.in_lab = options_.lab;
  cfg.terminations = &terminations_;
  SessionEvents events{
      [this] { on_session_closed(); },
      [this] { exiting_ = true; },
      [this] { maybe_finish(); },
  };
  session_kd_ = kd;
  if (kd)
    session_ = std::make_shared<KdSession>(io_, std::move(transport), target_, options_.log_packets, std::move(events));
  else
    session_ = std::make_shared<Session>(std::move(transport), target_, cfg, options_.log_packets, std::move(events));
  session_->start();
  session_->set_handshake_timeout(io_, std::chrono::seconds(options_.handshake_timeout));
}

Status Server::serve_stdio() {
  // One session over our own stdin/stdout; it ends dbgstub when it ends.
  options_.once = true;
  start_session(std::make_unique<StdioTransport>(io_), false);
  return ok_status();
}

namespace {

// A connection refused because a debugger is already connected: it is told
// why, given a moment to read that, and closed (after 3 s at the latest).
struct Refusal {
  std::unique_ptr<Transport> transport;
  asio::steady_timer timer;
  std::array<char, 512> buf{};
  std::string reply;
  bool closed = false;

  Refusal(std::unique_ptr<Transport> t, asio::io_context& io, std::string r)
      : transport(std::move(t)), timer(io), reply(std::move(r)) {}

  static std::shared_ptr<Refusal> start(std::unique_ptr<Transport> t, asio::io_context& io, const std::string& remote,
                                        std::string reply, const char* who) {
    spdlog::warn("refused a second {} from {}: another one is connected", who, remote);
    auto r = std::make_shared<Refusal>(std::move(t), io, std::move(reply));
    r->timer.expires_after(std::chrono::seconds(3));
    r->timer.async_wait([r](const asio::error_code& e) {
      if (!e) r->close();
    });
    return r;
  }
  void close() {
    if (closed) return;
    closed = true;
    timer.cancel();
    transport->close();
  }
  // Sends the reply, then `after` (unless the write failed).
  static void send(const std::shared_ptr<Refusal>& r, std::function<void()> after) {
    r->transport->write_all(asio::buffer(r->reply), [r, after](const asio::error_code& e, std::size_t) {
      if (e) return r->close();
      after();
    });
  }
  // Reads until the client hangs up (or the timer ends it).
  static void drain(const std::shared_ptr<Refusal>& r) {
    r->transport->read_some(asio::buffer(r->buf), [r](const asio::error_code& e, std::size_t) {
      if (e) return r->close();
      drain(r);
    });
  }
};

}  // namespace

// A second debugger gets its first packet answered with an error that says
// why, then the connection is closed. Answering before it has spoken would
// be lost: gdb drops packets that arrive while it waits for its own ack.
// (Through a front door the packet has been acknowledged already.)
void Server::refuse_busy(std::unique_ptr<Transport> transport, const std::string& remote, const std::string& why) {
  std::string reply = rsp::frame_packet("E.dbgstub: another debugger is already connected to this target" + why);
  if (!transport->acknowledges()) reply = "+" + reply;
  auto r = Refusal::start(std::move(transport), io_, remote, std::move(reply), "debugger");
  r->transport->read_some(asio::buffer(r->buf), [r](const asio::error_code& e, std::size_t) {
    if (e) return r->close();
    Refusal::send(r, [r] {
      // Let the client read the reply and hang up first (or time out).
      r->transport->read_some(asio::buffer(r->buf), [r](const asio::error_code&, std::size_t) { r->close(); });
    });
  });
}

// The same for a second KD client: WinDbg may wait silently for the target,
// so the refusal goes out at once, as a debug print (the one thing WinDbg
// shows from a target it is not synchronized with), then the connection
// is closed.
void Server::refuse_busy_kd(std::unique_ptr<Transport> transport, const std::string& remote, const std::string& why) {
  auto msg = kd::make_print_string("dbgstub: another debugger is already connected to this target" + why + "\n");
  auto framed = kd::frame_data_packet(kd::kPacketTypeKdDebugIo, kd::kInitialPacketId | kd::kSyncPacketId,
                                      kd::serialize_debug_io(msg));
  auto r = Refusal::start(std::move(transport), io_, remote,
                          framed ? std::string(framed->begin(), framed->end()) : std::string(), "KD debugger");
  // Let the client read it and hang up first (or time out).
  Refusal::send(r, [r] { Refusal::drain(r); });
}

void Server::maybe_finish() {
  // Only a user-mode session runs out of things to debug; a machine stays.
  bool extended = session_ && session_->extended();
  bool nothing_left = !extended && target_.mode() == Mode::User && !target_.has_processes() && !target_.running() &&
                      !target_.exit_report_owed() && !(session_ && session_->non_stop());
  if (exiting_ || (!options_.multi && nothing_left)) {
    if (session_) {
      session_->close_when_flushed();
    } else {
      shutdown();
    }
  }
}

// Without --once, a stopped user-mode program outlives its debugger's
// connection. Not a running one (nobody would see its next stop) and not
// after a non-stop session (threads gdb left running).
bool Server::keeps_program_for_next_debugger(bool was_non_stop) const {
  return !exiting_ && !options_.once && !options_.stdio && target_.mode() == Mode::User && !was_non_stop &&
         target_.has_processes() && !target_.running();
}

void Server::on_session_closed() {
  bool was_debugger = session_ && session_->heard_from_client();
  bool was_non_stop = session_ && session_->non_stop();
  session_.reset();
  if (!was_debugger && !exiting_ && !options_.stdio) {
    // Connected and said nothing: no debugging session happened, so the
    // target stays as it is for the next debugger.
    spdlog::info("connection closed before any packet: still waiting for a debugger");
    return;
  }
  spdlog::info("debugger session ended");
  if (keeps_program_for_next_debugger(was_non_stop)) {
    // gdb's "disconnect" (or a dropped connection) while the program is
    // stopped: as gdbserver without --once, it stays as it is and the next
    // debugger takes over where this one left (gdb.server/reconnect-ctrl-c,
    // gdb.threads/reconnect-signal).
    spdlog::info("the program stays stopped for the next debugger (--once would end it)");
    return;
  }
  // As gdbserver with --once: what we launched dies with the session, what
  // we attached to is let go and keeps running (a machine: resumed).
  release_target();
  if (exiting_ || options_.once || (!options_.multi && target_.mode() == Mode::User)) {
    shutdown();
    return;
  }
}

void Server::finish() {
  if (session_) {
    session_->abandon();
    session_.reset();
  }
  io_.restart();
  io_.poll();
}

void Server::close_listeners() {
  auto close_all = [this] {
    asio::error_code ec;
    for (auto& l : listeners_) l->acceptor.close(ec);
  };
  if (door_) door_->run(close_all);
  else close_all();
}

void Server::shutdown() {
  exiting_ = true;
  close_listeners();
  for (auto& w : waiting_) w.transport->close();
  waiting_.clear();
  if (session_) {
    auto s = session_;
    s->close_when_flushed();
  }
  release_target();
  stop_when_released();
}

// Lets the target go; a machine runs again, so what a debugger scheduled
// for termination happens now (the outcome goes to the log).
void Server::release_target(TerminationSchedule::Outcome outcome) {
  GuestProcesses* guest = target_.mode() == Mode::Kernel ? target_.guest_processes() : nullptr;
  // Without a guest agent the guest kernel ends them, called through the
  // VM before it is let go.
  if (guest && guest->terminates_while_halted() && !terminations_.empty())
    terminations_.run(*guest, nullptr, outcome);
  target_.release_all();
  if (guest && !terminations_.empty()) terminations_.run(*guest, nullptr, std::move(outcome));
}

std::optional<std::string> Server::debugger_address() const {
  if (!session_) return std::nullopt;
  return session_peer_;
}

void Server::stop_when_released() {
  // Releasing an attached, running process is asynchronous (stop all
  // threads, then detach); give it a moment before ending the loop.
  // Terminations in a guest take the guest agent a moment (bounded by its
  // own timeout).
  bool waiting = target_.has_processes() || terminations_.busy();
  if (!waiting || ++release_polls_ > (terminations_.busy() ? 4000 : 200)) {
    io_.stop();
    return;
  }
  release_timer_.expires_after(std::chrono::milliseconds(10));
  release_timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec) stop_when_released();
  });
}

}  // namespace dbgstub

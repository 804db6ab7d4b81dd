// The connection half that GDB's sessions (Session) and WinDbg's
// (KdSession) share: the read loop, the backlog drained a few milliseconds
// per turn, the bounded output queue, the handshake timeout and closing.
// Derived supplies feed(bytes, events) (its framer), handle_event(event)
// and on_close() (its own timers), and calls heard() once the client has
// said something that counts.
#pragma once
#include <spdlog/spdlog.h>

#include <array>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/plumbing/backlog.h"
#include "server/plumbing/debug_session.h"
#include "server/plumbing/output_queue.h"
#include "server/plumbing/transport.h"

namespace dbgstub {

template <class Derived, class Event>
class StreamSession : public DebugSession, public std::enable_shared_from_this<Derived> {
 public:
  void set_handshake_timeout(asio::io_context& io, std::chrono::seconds t) override {
    if (t.count() <= 0) return;
    handshake_timer_.emplace(io);
    handshake_timer_->expires_after(t);
    handshake_timer_->async_wait([this, self = this->shared_from_this(), t](const asio::error_code& ec) {
      if (ec || heard_from_client_ || closed_) return;
      spdlog::warn("{} sent no packet within {} s of connecting: closing the connection", peer_, t.count());
      shutdown();
    });
  }
  void close_when_flushed() override {
    closing_ = true;
    if (out_.idle()) shutdown();
  }
  void abandon() override {
    events_ = {};
    shutdown();
  }
  bool heard_from_client() const override { return heard_from_client_; }

 protected:
  // `peer` names the other side in the log ("debugger", "KD debugger").
  StreamSession(std::unique_ptr<Transport> transport, std::string peer, SessionEvents events)
      : transport_(std::move(transport)),
        peer_(peer),
        // A client that stops reading: past OutputQueue's bound, hang up.
        out_(*transport_, std::move(peer), [this] { shutdown(); }, [this] { if (closing_) shutdown(); }),
        events_(std::move(events)) {}

  void read() {
    transport_->read_some(asio::buffer(buf_), [this, self = this->shared_from_this()](const asio::error_code& ec,
                                                                                       std::size_t n) {
      if (ec) {
        if (ec != asio::error::operation_aborted) spdlog::info("{} disconnected ({})", peer_, ec.message());
        shutdown();
        return;
      }
      std::vector<Event> events;
      derived().feed(std::string_view(buf_.data(), n), events);
      backlog_.add(events);
      handle_events();
    });
  }

  void heard() {
    if (heard_from_client_) return;
    heard_from_client_ = true;
    if (handshake_timer_) handshake_timer_->cancel();
  }

  void write_raw(std::string bytes) {
    if (closed_) return;
    out_.write(std::move(bytes), this->shared_from_this());
  }

  // After each request and stop: the server may end now (--once, monitor exit).
  void maybe_finish() {
    if (events_.maybe_finish) events_.maybe_finish();
  }

  void shutdown() {
    if (closed_) return;
    closed_ = true;
    derived().on_close();
    if (handshake_timer_) handshake_timer_->cancel();
    transport_->close();
    if (events_.closed) events_.closed();
  }

  bool closed() const { return closed_; }
  SessionEvents& events() { return events_; }
  Transport& transport() { return *transport_; }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  // See Backlog: a few milliseconds of requests per turn of the loop.
  void handle_events() {
    if (backlog_.drain([this](Event& e) { derived().handle_event(e); },
                       [this] { return !closing_ && !closed_; })) {
      if (!closed_) read();
    } else if (!closing_ && !closed_) {
      transport_->defer([this, self = this->shared_from_this()] {
        if (!closed_) handle_events();
      });
    }
  }

  std::unique_ptr<Transport> transport_;
  std::string peer_;
  OutputQueue out_;
  SessionEvents events_;
  bool closing_ = false;
  bool closed_ = false;
  std::array<char, 16384> buf_{};
  Backlog<Event> backlog_;
  std::optional<asio::steady_timer> handshake_timer_;
  bool heard_from_client_ = false;
};

}  // namespace dbgstub

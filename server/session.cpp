#include "server/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace dbgstub {

Session::Session(std::unique_ptr<Transport> transport, Target& target, DispatcherConfig config, bool log_packets,
                 SessionEvents events)
    : transport_(std::move(transport)),
      out_(*transport_, "debugger", [this] { shutdown(); }, [this] { if (closing_) shutdown(); }),
      framer_(config.packet_size),
      dispatcher_(target, config,
                  SessionHooks{
                      [this](std::string p) { send(std::move(p)); },
                      [this] { ack_mode_ = false; },
                      [this] { if (events_.exit_server) events_.exit_server(); },
                      [](const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); },
                      [this](bool on) { log_packets_ = on; },
                      [this](std::string p) { notify(std::move(p)); },
                  }),
      log_packets_(log_packets),
      events_(std::move(events)) {}

void Session::start() { read(); }

void Session::set_handshake_timeout(asio::io_context& io, std::chrono::seconds t) {
  if (t.count() <= 0) return;
  handshake_timer_.emplace(io);
  handshake_timer_->expires_after(t);
  auto self = shared_from_this();
  handshake_timer_->async_wait([this, self, t](const asio::error_code& ec) {
    if (ec || heard_from_client_ || closed_) return;
    spdlog::warn("debugger sent no packet within {} s of connecting: closing the connection", t.count());
    shutdown();
  });
}

void Session::read() {
  auto self = shared_from_this();
  transport_->read_some(asio::buffer(buf_), [this, self](const asio::error_code& ec, std::size_t n) {
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::info("debugger disconnected ({})", ec.message());
      shutdown();
      return;
    }
    on_bytes(n);
  });
}

void Session::on_bytes(std::size_t n) {
  std::vector<rsp::FrameEvent> events;
  framer_.feed(std::string_view(buf_.data(), n), events);
  backlog_.add(events);
  handle_events();
}

// See Backlog: a few milliseconds of requests per turn of the loop.
void Session::handle_events() {
  if (backlog_.drain([this](rsp::FrameEvent& e) { handle_event(e); }, [this] { return !closing_ && !closed_; })) {
    if (!closed_) read();
  } else if (!closing_ && !closed_) {
    transport_->defer([this, self = shared_from_this()] { if (!closed_) handle_events(); });
  }
}

void Session::handle_event(rsp::FrameEvent& e) {
  using K = rsp::FrameEvent::Kind;
  switch (e.kind) {
    case K::Packet:
      if (!heard_from_client_) {
        heard_from_client_ = true;
        if (handshake_timer_) handshake_timer_->cancel();
      }
      if (log_packets_) spdlog::info("<- ${}", rsp::printable(e.payload, 512));
      if (ack_mode_) write_raw("+");
      dispatcher_.handle_packet(e.payload);
      if (events_.maybe_finish) events_.maybe_finish();
      break;
    case K::Ack:
      break;
    case K::Nack:
      if (ack_mode_ && !last_packet_.empty()) {
        spdlog::debug("debugger asked for a retransmission");
        write_raw(last_packet_);
      }
      break;
    case K::Interrupt:
      if (log_packets_) spdlog::info("<- ^C");
      dispatcher_.handle_interrupt();
      break;
    case K::BadChecksum:
      spdlog::warn("packet with a bad checksum{}", ack_mode_ ? ", retransmission requested" : " dropped");
      if (ack_mode_) write_raw("-");
      break;
    case K::Oversize:
      spdlog::warn("packet longer than {} bytes dropped", framer_.max_packet());
      if (ack_mode_) write_raw("-");
      break;
    case K::Malformed:
      spdlog::warn("malformed input: {}", e.payload);  // the framer's own words, log-safe already
      break;
  }
}

void Session::on_stop(const StopEvent& ev) {
  if (closed_) return;
  dispatcher_.handle_stop(ev);
  if (events_.maybe_finish) events_.maybe_finish();
}

void Session::send(std::string payload) {
  if (closed_) return;
  if (log_packets_) spdlog::info("-> ${}", rsp::printable(payload, 512));
  std::string framed = rsp::frame_packet(payload);
  last_packet_ = framed;
  write_raw(std::move(framed));
}

// Notifications are neither acknowledged nor retransmitted.
void Session::notify(std::string payload) {
  if (closed_) return;
  if (log_packets_) spdlog::info("-> %{}", rsp::printable(payload, 512));
  write_raw(rsp::frame_notification(payload));
}

void Session::write_raw(std::string bytes) {
  if (closed_) return;
  out_.write(std::move(bytes), shared_from_this());
}

void Session::close_when_flushed() {
  closing_ = true;
  if (out_.idle()) shutdown();
}

void Session::abandon() {
  events_ = {};
  shutdown();
}

void Session::shutdown() {
  if (closed_) return;
  closed_ = true;
  if (handshake_timer_) handshake_timer_->cancel();
  transport_->close();
  if (events_.closed) events_.closed();
}

}  // namespace dbgstub

#include "server/kd_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/kd/manipulate.h"

namespace dbgstub {
namespace {

std::string describe_packet(uint16_t type, const kd::Bytes& payload) {
  std::string s = "type " + std::to_string(type) + ", " + std::to_string(payload.size()) + " bytes";
  if (type == kd::kPacketTypeKdStateManipulate && payload.size() >= 4) {
    uint32_t api = kd::ByteReader(payload).u32(0);
    s += " " + std::string(kd::manipulate_api_name(api));
  }
  return s;
}

}  // namespace

KdSession::KdSession(asio::io_context& io, std::unique_ptr<Transport> transport, Target& target, bool log_packets,
                     SessionEvents events)
    : transport_(std::move(transport)),
      out_(*transport_, "KD debugger", [this] { shutdown(); }, [this] { if (closing_) shutdown(); }),
      dispatcher_(target, KdHooks{[this](uint16_t type, kd::Bytes p) { queue(type, std::move(p)); }}),
      log_packets_(log_packets),
      events_(std::move(events)),
      resend_timer_(io) {}

void KdSession::start() {
  read();
  // As a kernel that has just stopped: say so at once. WinDbg answers with
  // an ACK, or resynchronizes with RESET first (the packet is sent again).
  dispatcher_.start();
}

void KdSession::set_handshake_timeout(asio::io_context& io, std::chrono::seconds t) {
  if (t.count() <= 0) return;
  handshake_timer_.emplace(io);
  handshake_timer_->expires_after(t);
  auto self = shared_from_this();
  handshake_timer_->async_wait([this, self, t](const asio::error_code& ec) {
    if (ec || heard_from_client_ || closed_) return;
    spdlog::warn("KD client sent nothing within {} s of connecting: closing the connection", t.count());
    shutdown();
  });
}

void KdSession::read() {
  auto self = shared_from_this();
  transport_->read_some(asio::buffer(buf_), [this, self](const asio::error_code& ec, std::size_t n) {
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::info("KD debugger disconnected ({})", ec.message());
      shutdown();
      return;
    }
    on_bytes(n);
  });
}

void KdSession::on_bytes(std::size_t n) {
  std::vector<kd::KdEvent> events;
  framer_.feed(kd::ByteView(reinterpret_cast<const uint8_t*>(buf_.data()), n), events);
  backlog_.add(events);
  handle_events();
}

// See Backlog: a few milliseconds of requests per turn of the loop.
void KdSession::handle_events() {
  if (backlog_.drain([this](const kd::KdEvent& ev) { handle_event(ev); }, [this] { return !closing_ && !closed_; })) {
    if (!closed_) read();
  } else if (!closing_ && !closed_) {
    transport_->defer([this, self = shared_from_this()] { if (!closed_) handle_events(); });
  }
}

void KdSession::handle_event(const kd::KdEvent& ev) {
  bool junk = std::holds_alternative<kd::FrameError>(ev) &&
              std::get<kd::FrameError>(ev).kind == kd::FrameError::Kind::Junk;
  if (!junk && !heard_from_client_) {
    heard_from_client_ = true;
    if (handshake_timer_) handshake_timer_->cancel();
  }
  kd::SessionAction a = state_.on_event(ev);
  if (log_packets_ || std::holds_alternative<kd::FrameError>(ev)) {
    if (auto* d = std::get_if<kd::DataPacket>(&ev))
      spdlog::info("kd <- {:#010x} {}: {}", d->id, describe_packet(d->type, d->payload), a.note);
    else if (std::holds_alternative<kd::FrameError>(ev))
      spdlog::warn("kd: {}", a.note);
    else
      spdlog::info("kd <- {}", a.note);
  }
  for (auto& b : a.send) write_raw(b);
  if (a.acked || a.resend_requested) tries_ = 0;
  if (a.reset) dispatcher_.on_reset();
  if (a.break_in) dispatcher_.on_break_in();
  if (a.deliver) dispatcher_.handle_packet(*a.deliver);
  if (a.acked) pump();
  if (events_.maybe_finish) events_.maybe_finish();
}

void KdSession::on_stop(const StopEvent& ev) {
  if (closed_) return;
  dispatcher_.handle_stop(ev);
  if (events_.maybe_finish) events_.maybe_finish();
}

void KdSession::queue(uint16_t type, kd::Bytes payload) {
  if (closed_) return;
  queue_.emplace_back(type, std::move(payload));
  pump();
}

void KdSession::pump() {
  if (state_.awaiting_ack() || queue_.empty() || closed_) return;
  auto [type, payload] = std::move(queue_.front());
  queue_.pop_front();
  auto framed = state_.send(type, payload);
  if (!framed) {
    spdlog::error("kd: cannot send {}: {}", describe_packet(type, payload), framed.error().message);
    return pump();
  }
  if (log_packets_) spdlog::info("kd -> {:#010x} {}", state_.next_send_id(), describe_packet(type, payload));
  tries_ = 1;
  write_raw(*framed);
  arm_resend();
}

void KdSession::arm_resend() {
  resend_timer_.expires_after(kResendAfter);
  auto self = shared_from_this();
  resend_timer_.async_wait([this, self](const asio::error_code& ec) {
    if (ec || closed_ || !state_.awaiting_ack()) return;
    const auto& pending = state_.pending();
    if (pending && pending->type == kd::kPacketTypeKdDebugIo && tries_ >= kMaxPrintTries) {
      spdlog::debug("kd: debug print not acknowledged: given up");
      state_.abandon_pending();
      pump();
      return;
    }
    if (auto b = state_.resend_pending()) {
      ++tries_;
      spdlog::debug("kd: no acknowledgement: sending {:#010x} again", state_.next_send_id());
      write_raw(*b);
    }
    arm_resend();
  });
}

void KdSession::write_raw(const kd::Bytes& bytes) {
  if (closed_) return;
  out_.write(std::string(bytes.begin(), bytes.end()), shared_from_this());
}

void KdSession::close_when_flushed() {
  closing_ = true;
  if (out_.idle()) shutdown();
}

void KdSession::abandon() {
  events_ = {};
  shutdown();
}

void KdSession::shutdown() {
  if (closed_) return;
  closed_ = true;
  resend_timer_.cancel();
  if (handshake_timer_) handshake_timer_->cancel();
  transport_->close();
  if (events_.closed) events_.closed();
}

}  // namespace dbgstub

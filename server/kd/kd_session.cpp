#include "server/kd/kd_session.h"

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
    : StreamSession(std::move(transport), "KD debugger", std::move(events)),
      dispatcher_(target, KdHooks{[this](uint16_t type, kd::Bytes p) { queue(type, std::move(p)); }}),
      log_packets_(log_packets),
      resend_timer_(io) {}

void KdSession::start() {
  read();
  // As a kernel that has just stopped: say so at once. WinDbg answers with
  // an ACK, or resynchronizes with RESET first (the packet is sent again).
  dispatcher_.start();
}

void KdSession::feed(std::string_view bytes, std::vector<kd::KdEvent>& events) {
  framer_.feed(kd::ByteView(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), events);
}

void KdSession::handle_event(const kd::KdEvent& ev) {
  bool junk = std::holds_alternative<kd::FrameError>(ev) &&
              std::get<kd::FrameError>(ev).kind == kd::FrameError::Kind::Junk;
  if (!junk) heard();
  kd::SessionAction a = state_.on_event(ev);
  if (log_packets_ || std::holds_alternative<kd::FrameError>(ev)) {
    if (auto* d = std::get_if<kd::DataPacket>(&ev))
      spdlog::info("kd <- {:#010x} {}: {}", d->id, describe_packet(d->type, d->payload), a.note);
    else if (std::holds_alternative<kd::FrameError>(ev))
      spdlog::warn("kd: {}", a.note);
    else
      spdlog::info("kd <- {}", a.note);
  }
  for (auto& b : a.send) write_bytes(b);
  if (a.acked || a.resend_requested) tries_ = 0;
  if (a.reset) dispatcher_.on_reset();
  if (a.break_in) dispatcher_.on_break_in();
  if (a.deliver) dispatcher_.handle_packet(*a.deliver);
  if (a.acked) pump();
  maybe_finish();
}

void KdSession::on_stop(const StopEvent& ev) {
  if (closed()) return;
  dispatcher_.handle_stop(ev);
  maybe_finish();
}

void KdSession::queue(uint16_t type, kd::Bytes payload) {
  if (closed()) return;
  queue_.emplace_back(type, std::move(payload));
  pump();
}

void KdSession::pump() {
  if (state_.awaiting_ack() || queue_.empty() || closed()) return;
  auto [type, payload] = std::move(queue_.front());
  queue_.pop_front();
  auto framed = state_.send(type, payload);
  if (!framed) {
    spdlog::error("kd: cannot send {}: {}", describe_packet(type, payload), framed.error().message);
    return pump();
  }
  if (log_packets_) spdlog::info("kd -> {:#010x} {}", state_.next_send_id(), describe_packet(type, payload));
  tries_ = 1;
  write_bytes(*framed);
  arm_resend();
}

void KdSession::arm_resend() {
  resend_timer_.expires_after(kResendAfter);
  auto self = shared_from_this();
  resend_timer_.async_wait([this, self](const asio::error_code& ec) {
    if (ec || closed() || !state_.awaiting_ack()) return;
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
      write_bytes(*b);
    }
    arm_resend();
  });
}

void KdSession::write_bytes(const kd::Bytes& bytes) { write_raw(std::string(bytes.begin(), bytes.end())); }

}  // namespace dbgstub

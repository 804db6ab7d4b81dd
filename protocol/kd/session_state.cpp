#include "protocol/kd/session_state.h"

#include <type_traits>

namespace dbgstub::kd {
Result<Bytes> SessionState::send(uint16_t type, ByteView payload) {
  if (pending_) return make_error(16, "KD: packet " + hex32(send_id_) + " not yet acknowledged");
  auto framed = frame_data_packet(type, send_id_, payload);
  if (!framed) return framed.error();
  pending_ = Pending{type, Bytes(payload.begin(), payload.end())};
  return framed;
}

std::optional<Bytes> SessionState::resend_pending() const {
  if (!pending_) return std::nullopt;
  // Cannot fail: the payload was accepted by send().
  return frame_data_packet(pending_->type, send_id_, pending_->payload).value();
}

void SessionState::reset() {
  send_id_ = kInitialPacketId | kSyncPacketId;
  expect_id_ = kInitialPacketId;
  pending_.reset();
}

void SessionState::acknowledge_pending(SessionAction& a) {
  send_id_ ^= 1;
  send_id_ &= ~kSyncPacketId;
  pending_.reset();
  a.acked = true;
}

void SessionState::append_resend(SessionAction& a) const {
  if (auto b = resend_pending()) a.send.push_back(std::move(*b));
}

SessionAction SessionState::on_event(const KdEvent& ev) {
  SessionAction a;
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, ControlPacket>) {
          on_control(e, a);
        } else if constexpr (std::is_same_v<T, DataPacket>) {
          on_data(e, a);
        } else if constexpr (std::is_same_v<T, BreakIn>) {
          a.break_in = true;
          a.note = "break-in";
        } else {
          if (e.wants_resend()) {
            a.send.push_back(frame_control_packet(kPacketTypeKdResend, 0));
            a.note = "damaged packet, asked for resend: " + e.note;
          } else {
            a.note = e.note;
          }
        }
      },
      ev);
  return a;
}

void SessionState::on_control(const ControlPacket& c, SessionAction& a) {
  switch (c.kind()) {
    case ControlKind::Acknowledge:
      if (pending_ && c.id == (send_id_ & ~kSyncPacketId)) {
        acknowledge_pending(a);
        a.note = "ack " + hex32(c.id);
      } else {
        a.note = "ignored stale ack " + hex32(c.id);
      }
      return;
    case ControlKind::Reset:
      send_id_ = kInitialPacketId;
      expect_id_ = kInitialPacketId;
      a.reset = true;
      a.resend_requested = true;
      a.send.push_back(frame_control_packet(kPacketTypeKdReset, 0));
      append_resend(a);
      a.note = "reset";
      return;
    case ControlKind::Resend:
      a.resend_requested = true;
      append_resend(a);
      a.note = pending_ ? "resend of " + hex32(send_id_) : "resend requested, nothing pending";
      return;
    case ControlKind::Other:
      a.note = "ignored control packet type " + std::to_string(c.type);
      return;
  }
}

void SessionState::on_data(const DataPacket& d, SessionAction& a) {
  if (pending_) {
    // Our packet is still unacknowledged, yet the host sent data.
    if (d.id == expect_id_) {
      // The host has moved on, so it got our packet: the ACK was lost.
      // kdcom asks for this packet again rather than taking it now.
      acknowledge_pending(a);
      a.send.push_back(frame_control_packet(kPacketTypeKdResend, 0));
      a.note = "data " + hex32(d.id) + " while awaiting ack: implied ack, asked for resend";
    } else {
      a.send.push_back(frame_control_packet(kPacketTypeKdAcknowledge, d.id));
      a.duplicate = true;
      a.note = "duplicate " + hex32(d.id) + " while awaiting ack, acked and dropped";
    }
    return;
  }
  if (d.id != kInitialPacketId && d.id != (kInitialPacketId ^ 1)) {
    a.send.push_back(frame_control_packet(kPacketTypeKdResend, 0));
    a.note = "bad packet id " + hex32(d.id) + ", asked for resend";
    return;
  }
  a.send.push_back(frame_control_packet(kPacketTypeKdAcknowledge, d.id));
  if (d.id != expect_id_) {
    a.duplicate = true;
    a.note = "duplicate " + hex32(d.id) + ", acked and dropped";
    return;
  }
  expect_id_ ^= 1;
  a.deliver = d;
  a.note = "data " + hex32(d.id);
}

}  // namespace dbgstub::kd

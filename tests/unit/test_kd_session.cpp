#include <doctest/doctest.h>

#include "protocol/kd/framing.h"
#include "protocol/kd/session_state.h"

using namespace dbgstub::kd;

namespace {

KdEvent data(uint32_t id, Bytes payload = Bytes(0x38, 0)) {
  return DataPacket{kPacketTypeKdStateManipulate, id, std::move(payload)};
}
KdEvent control(uint16_t type, uint32_t id) { return ControlPacket{type, id}; }

PacketHeader header_of(const Bytes& b) { return decode_header(b).value(); }

bool is_control(const Bytes& b, uint16_t type, uint32_t id) {
  auto h = header_of(b);
  return b.size() == kHeaderSize && h.is_control() && h.type == type && h.id == id;
}

}  // namespace

TEST_CASE("kd session: first packet carries the sync bit, ids toggle on ack") {
  SessionState s;
  CHECK(s.next_send_id() == 0x80800800);
  CHECK(s.expected_receive_id() == 0x80800000);
  Bytes payload(0xF0, 0x5A);
  auto f = s.send(kPacketTypeKdStateChange64, payload);
  REQUIRE(f.ok());
  CHECK(header_of(*f).id == 0x80800800);
  CHECK(s.awaiting_ack());
  CHECK_FALSE(s.send(kPacketTypeKdStateChange64, payload).ok());  // one at a time

  // An ack for the wrong id is ignored.
  auto a0 = s.on_event(control(kPacketTypeKdAcknowledge, 0x80800001));
  CHECK_FALSE(a0.acked);
  CHECK(s.awaiting_ack());
  // The host acks without the sync bit.
  auto a1 = s.on_event(control(kPacketTypeKdAcknowledge, 0x80800000));
  CHECK(a1.acked);
  CHECK(a1.send.empty());
  CHECK_FALSE(s.awaiting_ack());
  CHECK(s.next_send_id() == 0x80800001);

  REQUIRE(s.send(kPacketTypeKdStateManipulate, Bytes(0x38, 0)).ok());
  CHECK(s.on_event(control(kPacketTypeKdAcknowledge, 0x80800001)).acked);
  CHECK(s.next_send_id() == 0x80800000);
  REQUIRE(s.send(kPacketTypeKdStateManipulate, Bytes(0x38, 0)).ok());
  CHECK(s.on_event(control(kPacketTypeKdAcknowledge, 0x80800000)).acked);
  CHECK(s.next_send_id() == 0x80800001);
  // A repeated ack is stale.
  CHECK_FALSE(s.on_event(control(kPacketTypeKdAcknowledge, 0x80800000)).acked);
}

TEST_CASE("kd session: incoming ids, acks and duplicates") {
  SessionState s;
  auto a = s.on_event(data(0x80800000));
  REQUIRE(a.deliver.has_value());
  REQUIRE(a.send.size() == 1);
  CHECK(is_control(a.send[0], kPacketTypeKdAcknowledge, 0x80800000));
  CHECK(s.expected_receive_id() == 0x80800001);

  // The same packet again (our ACK was lost): acked again, not delivered.
  auto dup = s.on_event(data(0x80800000));
  CHECK_FALSE(dup.deliver.has_value());
  CHECK(dup.duplicate);
  REQUIRE(dup.send.size() == 1);
  CHECK(is_control(dup.send[0], kPacketTypeKdAcknowledge, 0x80800000));

  auto b = s.on_event(data(0x80800001));
  CHECK(b.deliver.has_value());
  CHECK(s.expected_receive_id() == 0x80800000);

  // An id outside the two valid ones is refused with RESEND.
  auto bad = s.on_event(data(0x12345678));
  CHECK_FALSE(bad.deliver.has_value());
  REQUIRE(bad.send.size() == 1);
  CHECK(is_control(bad.send[0], kPacketTypeKdResend, 0));
}

TEST_CASE("kd session: damaged packets are answered with RESEND, junk is not") {
  SessionState s;
  for (auto k : {FrameError::Kind::BadChecksum, FrameError::Kind::BadTrailer, FrameError::Kind::BadLength,
                 FrameError::Kind::Oversize}) {
    auto a = s.on_event(FrameError{k, kPacketTypeKdStateManipulate, 0x80800000, "x"});
    REQUIRE(a.send.size() == 1);
    CHECK(is_control(a.send[0], kPacketTypeKdResend, 0));
  }
  CHECK(s.on_event(FrameError{FrameError::Kind::Junk, 0, 0, "j"}).send.empty());
  CHECK(s.on_event(BreakIn{}).break_in);
  CHECK(s.expected_receive_id() == 0x80800000);
}

TEST_CASE("kd session: RESEND resends the pending packet byte for byte") {
  SessionState s;
  Bytes payload{1, 2, 3, 4};
  Bytes first = s.send(kPacketTypeKdDebugIo, payload).value();
  auto a = s.on_event(control(kPacketTypeKdResend, 0));
  CHECK(a.resend_requested);
  REQUIRE(a.send.size() == 1);
  CHECK(a.send[0] == first);
  CHECK(*s.resend_pending() == first);
  // Nothing pending: the request is reported for the caller's policy.
  s.on_event(control(kPacketTypeKdAcknowledge, 0x80800000));
  auto b = s.on_event(control(kPacketTypeKdResend, 0));
  CHECK(b.resend_requested);
  CHECK(b.send.empty());
}

TEST_CASE("kd session: RESET resets both counters, answers RESET, resends pending") {
  SessionState s;
  s.send(kPacketTypeKdStateChange64, Bytes(0xF0, 1)).value();
  s.on_event(control(kPacketTypeKdAcknowledge, 0x80800000));
  s.on_event(data(0x80800000));  // expected becomes ...01
  Bytes payload(0x38, 7);
  REQUIRE(s.send(kPacketTypeKdStateManipulate, payload).ok());
  CHECK(s.next_send_id() == 0x80800001);

  auto a = s.on_event(control(kPacketTypeKdReset, 0));
  CHECK(a.reset);
  REQUIRE(a.send.size() == 2);
  CHECK(is_control(a.send[0], kPacketTypeKdReset, 0));
  auto h = header_of(a.send[1]);
  CHECK(h.id == kInitialPacketId);
  CHECK(Bytes(a.send[1].begin() + 16, a.send[1].end() - 1) == payload);
  CHECK(s.expected_receive_id() == kInitialPacketId);
  CHECK(s.on_event(control(kPacketTypeKdAcknowledge, kInitialPacketId)).acked);
  CHECK(s.next_send_id() == 0x80800001);
}

TEST_CASE("kd session: data while awaiting ack (lost ack)") {
  SessionState s;
  s.send(kPacketTypeKdStateChange64, Bytes(0xF0, 1)).value();
  // The host's next packet is the expected one: our packet counts as
  // acknowledged and the host is asked to send its packet again.
  auto a = s.on_event(data(0x80800000));
  CHECK(a.acked);
  CHECK_FALSE(a.deliver.has_value());
  REQUIRE(a.send.size() == 1);
  CHECK(is_control(a.send[0], kPacketTypeKdResend, 0));
  CHECK(s.next_send_id() == 0x80800001);
  CHECK(s.expected_receive_id() == 0x80800000);
  auto b = s.on_event(data(0x80800000));
  CHECK(b.deliver.has_value());

  // An unexpected id while awaiting ack is a duplicate: acked, dropped.
  s.send(kPacketTypeKdStateManipulate, Bytes(0x38, 2)).value();
  auto c = s.on_event(data(0x80800000));
  CHECK(c.duplicate);
  CHECK_FALSE(c.acked);
  REQUIRE(c.send.size() == 1);
  CHECK(is_control(c.send[0], kPacketTypeKdAcknowledge, 0x80800000));
  CHECK(s.awaiting_ack());
}

TEST_CASE("kd session: abandon and local reset") {
  SessionState s;
  s.send(kPacketTypeKdDebugIo, Bytes(0x10, 0)).value();
  s.abandon_pending();
  CHECK_FALSE(s.awaiting_ack());
  CHECK(s.next_send_id() == 0x80800800);  // unchanged: no ack was seen
  s.on_event(data(0x80800000));
  s.reset();
  CHECK(s.next_send_id() == 0x80800800);
  CHECK(s.expected_receive_id() == 0x80800000);
}

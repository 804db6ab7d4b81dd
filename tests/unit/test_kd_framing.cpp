#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "protocol/kd/framing.h"

using namespace dbgstub::kd;

namespace {

std::vector<KdEvent> feed_all(KdFramer& f, const Bytes& b) {
  std::vector<KdEvent> out;
  f.feed(ByteView(b), out);
  return out;
}

std::vector<KdEvent> feed_bytewise(KdFramer& f, const Bytes& b) {
  std::vector<KdEvent> out;
  for (uint8_t c : b) f.feed(ByteView(&c, 1), out);
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes manip_payload(uint8_t fill = 0x11, std::size_t n = 0x38) {
  Bytes p(n, fill);
  p[0] = 0x30;  // DbgKdReadVirtualMemoryApi
  p[1] = 0x31;
  p[2] = p[3] = 0;
  return p;
}

Bytes framed(uint16_t type, uint32_t id, const Bytes& payload) { return frame_data_packet(type, id, payload).value(); }

}  // namespace

TEST_CASE("kd checksum is the 32-bit byte sum") {
  CHECK(checksum(ByteView()) == 0);
  Bytes b{0x01, 0x02, 0xff};
  CHECK(checksum(b) == 0x102);
  Bytes big(4000, 0xff);
  CHECK(checksum(big) == 4000u * 0xff);
}

TEST_CASE("kd header encode/decode") {
  PacketHeader h{kPacketLeader, kPacketTypeKdStateManipulate, 0x38, 0x80800001, 0x1234};
  auto e = encode_header(h);
  Bytes expect{0x30, 0x30, 0x30, 0x30, 0x02, 0x00, 0x38, 0x00, 0x01, 0x00, 0x80, 0x80, 0x34, 0x12, 0x00, 0x00};
  CHECK(Bytes(e.begin(), e.end()) == expect);
  auto d = decode_header(ByteView(e.data(), e.size()));
  REQUIRE(d.ok());
  CHECK(*d == h);
  CHECK_FALSE(d->is_control());

  CHECK_FALSE(decode_header(ByteView(e.data(), 15)).ok());
  Bytes bad = expect;
  bad[0] = 0x31;
  CHECK_FALSE(decode_header(bad).ok());
}

TEST_CASE("kd frame_data_packet and frame_control_packet layout") {
  Bytes payload{1, 2, 3};
  Bytes f = framed(kPacketTypeKdDebugIo, 0x80800800, payload);
  Bytes expect{0x30, 0x30, 0x30, 0x30, 0x03, 0x00, 0x03, 0x00, 0x00, 0x08, 0x80, 0x80, 0x06, 0x00, 0x00, 0x00, 1, 2, 3, 0xAA};
  CHECK(f == expect);
  Bytes c = frame_control_packet(kPacketTypeKdAcknowledge, 0x80800000);
  Bytes cexp{0x69, 0x69, 0x69, 0x69, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x80, 0, 0, 0, 0};
  CHECK(c == cexp);
  CHECK_FALSE(frame_data_packet(kPacketTypeKdDebugIo, 0, Bytes(4001, 0)).ok());
  CHECK(frame_data_packet(kPacketTypeKdDebugIo, 0, Bytes(4000, 0)).ok());
}

TEST_CASE("kd framer decodes data, control and break-in in any chunking") {
  Bytes p = manip_payload();
  Bytes stream = cat({framed(kPacketTypeKdStateManipulate, 0x80800000, p), frame_control_packet(kPacketTypeKdAcknowledge, 0x80800001),
                      Bytes{0x62}, frame_control_packet(kPacketTypeKdResend, 0), frame_control_packet(kPacketTypeKdReset, 0),
                      framed(kPacketTypeKdStateManipulate, 0x80800001, p)});
  for (int mode = 0; mode < 3; ++mode) {
    KdFramer f;
    std::vector<KdEvent> ev;
    if (mode == 0) {
      ev = feed_all(f, stream);
    } else if (mode == 1) {
      ev = feed_bytewise(f, stream);
    } else {
      for (std::size_t i = 0; i < stream.size(); i += 7) {
        std::size_t n = std::min<std::size_t>(7, stream.size() - i);
        f.feed(ByteView(stream.data() + i, n), ev);
      }
    }
    REQUIRE(ev.size() == 6);
    REQUIRE(std::holds_alternative<DataPacket>(ev[0]));
    CHECK(std::get<DataPacket>(ev[0]).type == kPacketTypeKdStateManipulate);
    CHECK(std::get<DataPacket>(ev[0]).id == 0x80800000);
    CHECK(std::get<DataPacket>(ev[0]).payload == p);
    REQUIRE(std::holds_alternative<ControlPacket>(ev[1]));
    CHECK(std::get<ControlPacket>(ev[1]).kind() == ControlKind::Acknowledge);
    CHECK(std::get<ControlPacket>(ev[1]).id == 0x80800001);
    CHECK(std::holds_alternative<BreakIn>(ev[2]));
    CHECK(std::get<ControlPacket>(ev[3]).kind() == ControlKind::Resend);
    CHECK(std::get<ControlPacket>(ev[4]).kind() == ControlKind::Reset);
    CHECK(std::get<DataPacket>(ev[5]).id == 0x80800001);
    CHECK_FALSE(f.in_packet());
  }
}

TEST_CASE("kd framer: BREAKIN_PACKET run is one event, leaders resync after junk") {
  KdFramer f;
  Bytes p = manip_payload();
  Bytes stream = cat({Bytes{0x62, 0x62, 0x62, 0x62}, Bytes{0x00, 0x30, 0x30, 0x69, 0x01},
                      framed(kPacketTypeKdStateManipulate, 0x80800000, p)});
  auto ev = feed_all(f, stream);
  REQUIRE(ev.size() == 3);
  CHECK(std::holds_alternative<BreakIn>(ev[0]));
  REQUIRE(std::holds_alternative<FrameError>(ev[1]));
  CHECK(std::get<FrameError>(ev[1]).kind == FrameError::Kind::Junk);
  CHECK_FALSE(std::get<FrameError>(ev[1]).wants_resend());
  CHECK(std::holds_alternative<DataPacket>(ev[2]));
}

TEST_CASE("kd framer malformed-input table") {
  Bytes p = manip_payload();
  Bytes good = framed(kPacketTypeKdStateManipulate, 0x80800000, p);
  auto with = [&](std::size_t off, uint8_t v) {
    Bytes b = good;
    b[off] = v;
    return b;
  };
  Bytes bad_ck = with(12, static_cast<uint8_t>(good[12] + 1));
  Bytes bad_payload = with(20, static_cast<uint8_t>(good[20] ^ 0x40));
  Bytes bad_trailer = with(good.size() - 1, 0x55);
  // ByteCount 3 for a manipulate packet (needs 0x38).
  Bytes short_len = framed(kPacketTypeKdStateManipulate, 0x80800000, Bytes{1, 2, 3});
  // ByteCount 4001.
  Bytes oversize = cat({Bytes{0x30, 0x30, 0x30, 0x30, 0x02, 0x00, 0xA1, 0x0F, 0, 0, 0x80, 0x80, 0, 0, 0, 0}});
  struct Row {
    const char* name;
    Bytes input;
    FrameError::Kind kind;
  };
  std::vector<Row> rows{
      {"bad checksum field", bad_ck, FrameError::Kind::BadChecksum},
      {"corrupted payload", bad_payload, FrameError::Kind::BadChecksum},
      {"bad trailer", bad_trailer, FrameError::Kind::BadTrailer},
      {"short for its type", short_len, FrameError::Kind::BadLength},
      {"oversize", oversize, FrameError::Kind::Oversize},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    // The damaged packet, then a good one: the good one must survive.
    KdFramer f;
    auto ev = feed_all(f, cat({r.input, good}));
    REQUIRE(ev.size() >= 2);
    REQUIRE(std::holds_alternative<FrameError>(ev[0]));
    CHECK(std::get<FrameError>(ev[0]).kind == r.kind);
    CHECK(std::get<FrameError>(ev[0]).wants_resend());
    CHECK(std::get<FrameError>(ev[0]).id == 0x80800000);
    bool found = false;
    for (const auto& e : ev)
      if (auto* d = std::get_if<DataPacket>(&e)) found = found || d->payload == p;
    CHECK(found);
  }
}

TEST_CASE("kd framer: bad trailer byte may start the next packet") {
  Bytes p = manip_payload();
  Bytes good = framed(kPacketTypeKdStateManipulate, 0x80800001, p);
  Bytes cut = framed(kPacketTypeKdStateManipulate, 0x80800000, p);
  cut.pop_back();  // trailer missing: the next leader follows at once
  KdFramer f;
  auto ev = feed_all(f, cat({cut, good}));
  REQUIRE(ev.size() == 2);
  CHECK(std::get<FrameError>(ev[0]).kind == FrameError::Kind::BadTrailer);
  CHECK(std::get<DataPacket>(ev[1]).id == 0x80800001);
}

TEST_CASE("kd decode_unframed_packet checks count and checksum") {
  Bytes p = manip_payload();
  Bytes f = framed(kPacketTypeKdStateManipulate, 7, p);
  f.pop_back();
  auto ok = decode_unframed_packet(f);
  REQUIRE(ok.ok());
  CHECK(ok->payload == p);
  Bytes extra = f;
  extra.push_back(0);
  CHECK_FALSE(decode_unframed_packet(extra).ok());
  Bytes badck = f;
  badck[12] ^= 1;
  CHECK_FALSE(decode_unframed_packet(badck).ok());
  CHECK(decode_unframed_packet(frame_control_packet(kPacketTypeKdReset, 0)).ok());
  CHECK_FALSE(decode_unframed_packet(Bytes(10, 0x30)).ok());
}

TEST_CASE("kd framer random bytes: no crash, bounded, recovers") {
  std::mt19937 rng(12345);
  Bytes p = manip_payload(0x22, 200);
  Bytes good = framed(kPacketTypeKdStateManipulate, 0x80800000, p);
  KdFramer f;
  std::size_t events = 0;
  for (int round = 0; round < 2000; ++round) {
    std::size_t n = rng() % 300;
    Bytes junk(n);
    // Bias towards protocol bytes so leaders and headers actually start.
    for (auto& b : junk) {
      uint32_t r = rng() % 8;
      b = r == 0 ? 0x30 : r == 1 ? 0x69 : r == 2 ? 0x62 : r == 3 ? 0xAA : static_cast<uint8_t>(rng());
    }
    std::vector<KdEvent> ev;
    f.feed(ByteView(junk), ev);
    for (const auto& e : ev)
      if (auto* d = std::get_if<DataPacket>(&e)) CHECK(d->payload.size() <= kPacketMaxSize);
    events += ev.size();
    if (round % 100 == 0) {
      // After a reset the framer decodes a good packet again.
      f.reset();
      std::vector<KdEvent> ev2;
      f.feed(ByteView(good), ev2);
      REQUIRE(ev2.size() == 1);
      CHECK(std::holds_alternative<DataPacket>(ev2[0]));
    }
  }
  CHECK(events > 0);
}

// The notes are formatted without snprintf; their text is what it was.
TEST_CASE("kd framer: junk and damaged-packet notes") {
  KdFramer f;
  Bytes junk{0x00, 0x0f, 0xa5, 0xff, 0x30, 0x30, 0x01};
  auto ev = feed_all(f, junk);
  REQUIRE(ev.size() == 1);
  CHECK(std::get<FrameError>(ev[0]).note == "7 junk byte(s) outside packets: 000fa5ff303001");
  Bytes many(40, 0xab);
  ev = feed_all(f, many);
  REQUIRE(ev.size() == 1);
  std::string first32;
  for (int i = 0; i < 32; ++i) first32 += "ab";
  CHECK(std::get<FrameError>(ev[0]).note == "40 junk byte(s) outside packets: " + first32 + "...");

  Bytes bad = framed(kPacketTypeKdStateManipulate, 0x8080000f, manip_payload());
  bad[12] ^= 0x01;  // the checksum's low byte
  ev = feed_all(f, bad);
  REQUIRE(ev.size() == 1);
  uint32_t sum = checksum(manip_payload());
  char want[64];
  std::snprintf(want, sizeof want, "checksum 0x%08x, computed 0x%08x", sum ^ 1u, sum);
  CHECK(std::get<FrameError>(ev[0]).note == want);
  Bytes trailer = framed(kPacketTypeKdStateManipulate, 0xabcdef01, manip_payload());
  trailer.back() = 0x00;
  ev = feed_all(f, trailer);
  REQUIRE(ev.size() == 2);
  CHECK(std::get<FrameError>(ev[0]).note == "expected 0xAA trailer after packet 0xabcdef01");
}

// Header and payload bytes are copied as far as each chunk goes: every
// split point of a packet (and of two in a row) gives the same events.
TEST_CASE("kd framer: every two-chunk split of a stream decodes alike") {
  Bytes p = manip_payload(0x22, 0x40);
  Bytes stream = cat({framed(kPacketTypeKdStateManipulate, 0x80800000, p), Bytes{0x01},
                      frame_control_packet(kPacketTypeKdAcknowledge, 0x80800001),
                      framed(kPacketTypeKdStateManipulate, 0x80800001, manip_payload())});
  KdFramer ref;
  auto want = feed_all(ref, stream);
  REQUIRE(want.size() == 4);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    KdFramer f;
    std::vector<KdEvent> ev;
    f.feed(ByteView(stream.data(), cut), ev);
    f.feed(ByteView(stream.data() + cut, stream.size() - cut), ev);
    REQUIRE(ev.size() == want.size());
    CHECK(std::get<DataPacket>(ev[0]).payload == p);
    CHECK(std::get<FrameError>(ev[1]).note == "1 junk byte(s) outside packets: 01");
    CHECK(std::get<ControlPacket>(ev[2]).id == 0x80800001);
    CHECK(std::get<DataPacket>(ev[3]).id == 0x80800001);
    CHECK_FALSE(f.in_packet());
  }
}

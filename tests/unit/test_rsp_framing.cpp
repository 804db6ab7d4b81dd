#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/rsp/framing.h"
#include "protocol/rsp/hex.h"

using namespace dbgstub::rsp;
using K = FrameEvent::Kind;

namespace {

std::vector<FrameEvent> feed_all(Framer& f, std::string_view bytes) {
  std::vector<FrameEvent> out;
  f.feed(bytes, out);
  return out;
}

std::vector<FrameEvent> feed_bytewise(Framer& f, std::string_view bytes) {
  std::vector<FrameEvent> out;
  for (char c : bytes) f.feed(std::string_view(&c, 1), out);
  return out;
}

// Frames a body that is already in wire form (escapes/RLE included).
std::string wire(std::string_view raw_body) { return "$" + std::string(raw_body) + "#" + hex_u8(checksum(raw_body)); }

}  // namespace

TEST_CASE("checksum and framing of known packets") {
  CHECK(checksum("") == 0);
  CHECK(checksum("OK") == 0x9a);
  CHECK(frame_packet("OK") == "$OK#9a");
  CHECK(frame_packet("") == "$#00");
  CHECK(frame_packet("qSupported") == "$qSupported#37");
  CHECK(frame_notification("Stop:T05") == "%Stop:T05#" + hex_u8(checksum("Stop:T05")));
}

TEST_CASE("frame_packet escapes only framing bytes") {
  CHECK(escape_binary("a#b$c}d*e") == "a}\x03" "b}\x04" "c}]d}\x0a" "e");
  CHECK(escape_binary(std::string("\x03+-\x00", 4)) == std::string("\x03+-\x00", 4));
  CHECK(frame_packet("a*b") == "$a}\nb#" + hex_u8(checksum("a}\nb")));
}

TEST_CASE("escape round trip for all 256 byte values") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  Framer f;
  auto ev = feed_all(f, frame_packet(all));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == K::Packet);
  CHECK(ev[0].payload == all);

  // Same, one byte at a time.
  Framer g;
  auto ev2 = feed_bytewise(g, frame_packet(all) + frame_packet(all));
  REQUIRE(ev2.size() == 2);
  CHECK(ev2[1].payload == all);
}

TEST_CASE("split feeds give the same events") {
  std::string stream = "+" + frame_packet("qSupported:multiprocess+") + "-" + std::string(1, '\x03') + frame_packet("g");
  Framer a, b;
  auto whole = feed_all(a, stream);
  auto bytes = feed_bytewise(b, stream);
  REQUIRE(whole.size() == 5);
  REQUIRE(bytes.size() == 5);
  for (std::size_t i = 0; i < whole.size(); ++i) {
    CHECK(whole[i].kind == bytes[i].kind);
    CHECK(whole[i].payload == bytes[i].payload);
  }
  CHECK(whole[0].kind == K::Ack);
  CHECK(whole[1].kind == K::Packet);
  CHECK(whole[1].payload == "qSupported:multiprocess+");
  CHECK(whole[2].kind == K::Nack);
  CHECK(whole[3].kind == K::Interrupt);
  CHECK(whole[4].payload == "g");
  CHECK_FALSE(a.in_packet());
}

TEST_CASE("in_packet tracks partial packets") {
  Framer f;
  std::vector<FrameEvent> out;
  f.feed("$m10", out);
  CHECK(f.in_packet());
  f.feed(",4#", out);
  CHECK(f.in_packet());
  f.feed("2e", out);
  CHECK_FALSE(f.in_packet());
  REQUIRE(out.size() == 1);
  CHECK(out[0].payload == "m10,4");
}

TEST_CASE("interrupt byte inside a packet is data, outside is an interrupt") {
  Framer f;
  std::string body = std::string("X0,1:") + '\x03';
  auto ev = feed_all(f, "\x03" + wire(body) + "\x03");
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].kind == K::Interrupt);
  CHECK(ev[1].kind == K::Packet);
  CHECK(ev[1].payload == body);
  CHECK(ev[2].kind == K::Interrupt);
}

TEST_CASE("checksum digits accept either case") {
  Framer f;
  auto ev = feed_all(f, "$OK#9A$OK#9a");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == K::Packet);
  CHECK(ev[1].kind == K::Packet);
}

TEST_CASE("bad checksum is reported and the framer continues") {
  Framer f;
  auto ev = feed_all(f, "$OK#00+$OK#9a");
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].kind == K::BadChecksum);
  CHECK(ev[1].kind == K::Ack);
  CHECK(ev[2].kind == K::Packet);

  // A non-hex checksum digit: the byte is looked at again outside the packet.
  Framer g;
  auto ev2 = feed_all(g, "$OK#+");
  REQUIRE(ev2.size() == 2);
  CHECK(ev2[0].kind == K::BadChecksum);
  CHECK(ev2[1].kind == K::Ack);
}

TEST_CASE("'$' inside a body restarts the packet") {
  Framer f;
  auto ev = feed_all(f, "$qSupp$g#67");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == K::Packet);
  CHECK(ev[0].payload == "g");

  Framer g;  // '$' where a checksum digit was expected
  auto ev2 = feed_all(g, "$qC#$g#67");
  REQUIRE(ev2.size() == 1);
  CHECK(ev2[0].payload == "g");
}

TEST_CASE("run-length decoding") {
  std::string out;
  CHECK(decode_body("0* ", 100, out));
  CHECK(out == "0000");  // ' ' = 32: 3 more
  CHECK(decode_body("a*!b", 100, out));
  CHECK(out == "aaaaab");
  CHECK(decode_body("x*~", 1000, out));
  CHECK(out == std::string(1 + 126 - 29, 'x'));
  CHECK(decode_body("}]*\"", 100, out));  // escaped '}' repeated
  CHECK(out == "}}}}}}");

  CHECK_FALSE(decode_body("*!", 100, out));      // nothing to repeat
  CHECK_FALSE(decode_body("a*", 100, out));      // missing count
  CHECK_FALSE(decode_body("a*\x1f", 100, out));  // count below range
  CHECK_FALSE(decode_body("a*#", 100, out));     // framing char as count
  CHECK_FALSE(decode_body("a*$", 100, out));
  CHECK_FALSE(decode_body("ab}", 100, out));     // dangling escape

  // Output is bounded: "a*~" repeated can't grow past max_out.
  std::string bomb;
  for (int i = 0; i < 1000; ++i) bomb += "a*~";
  CHECK_FALSE(decode_body(bomb, 4096, out));
  CHECK(out.size() <= 4096);
  CHECK(decode_body("a*~", 98, out));
  CHECK_FALSE(decode_body("a*~", 97, out));
  CHECK_FALSE(decode_body("abc", 2, out));

  Framer f;
  auto ev = feed_all(f, wire("T05*\""));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].payload == "T0555555");  // '"' = 34: five more
}

TEST_CASE("RLE bomb through the framer is rejected, not expanded") {
  std::string bomb;
  for (int i = 0; i < 200; ++i) bomb += "a*~";
  Framer f(1024);
  auto ev = feed_all(f, wire(bomb) + frame_packet("OK"));
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == K::Malformed);
  CHECK(ev[1].kind == K::Packet);
}

TEST_CASE("oversize packet is dropped and the framer recovers") {
  Framer f(16);
  // The tail of the big packet holds '+', '-' and 0x03: they must not be
  // mistaken for acks or interrupts.
  std::string big = std::string(40, 'A') + "+-\x03" + std::string(10, 'B');
  auto ev = feed_bytewise(f, wire(big) + frame_packet("qC"));
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == K::Oversize);
  CHECK(ev[1].kind == K::Packet);
  CHECK(ev[1].payload == "qC");

  // An oversize packet whose end is lost resyncs at the next '$'.
  Framer g(16);
  auto ev2 = feed_all(g, "$" + std::string(100, 'z') + frame_packet("qC"));
  REQUIRE(ev2.size() == 1);
  CHECK(ev2[0].kind == K::Packet);
  CHECK(ev2[0].payload == "qC");

  // Exactly at the limit is fine.
  Framer h(16);
  auto ev3 = feed_all(h, frame_packet(std::string(16, 'q')));
  REQUIRE(ev3.size() == 1);
  CHECK(ev3[0].kind == K::Packet);
}

TEST_CASE("junk outside packets is one bounded Malformed event per run") {
  Framer f;
  std::string junk(10000, 'j');
  auto ev = feed_bytewise(f, "hello\r\n" + frame_packet("qC") + junk + "+" + "zz");
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].kind == K::Malformed);
  CHECK(ev[0].payload.find("hello\\x0d\\x0a") != std::string::npos);
  CHECK(ev[1].kind == K::Packet);
  CHECK(ev[2].kind == K::Malformed);
  CHECK(ev[2].payload.size() < 200);
  CHECK(ev[3].kind == K::Ack);
  // The trailing "zz" is held until the run ends.
  auto ev2 = feed_all(f, "-");
  REQUIRE(ev2.size() == 2);
  CHECK(ev2[0].kind == K::Malformed);
  CHECK(ev2[1].kind == K::Nack);
}

TEST_CASE("bad escape inside a packet is Malformed") {
  Framer f;
  auto ev = feed_all(f, wire("ab}") + wire("*x"));
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == K::Malformed);
  CHECK(ev[1].kind == K::Malformed);
}

TEST_CASE("printable: log-safe, reversible, bounded") {
  using dbgstub::rsp::printable;
  CHECK(printable("qSupported:xmlRegisters=i386") == "qSupported:xmlRegisters=i386");
  CHECK(printable(std::string_view("a\x1b[2J\x00z", 7)) == "a\\x1b[2J\\x00z");
  CHECK(printable("a\\x41") == "a\\x5cx41");  // a literal backslash can't pass for an escape
  CHECK(printable("abcdef", 3) == "abc...");
  CHECK(printable("abc", 3) == "abc");
}

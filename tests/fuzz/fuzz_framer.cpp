// libFuzzer target: rsp::Framer on an arbitrary byte stream.
//
// The first bytes pick the Framer's packet limit and the chunk sizes; the
// rest is the stream, fed in those chunks (the session's reads split the
// stream anywhere). Every Packet event goes through parse_request, as the
// session would. Each decoded payload must also survive a round trip:
// frame_packet(payload) fed into a fresh Framer gives back exactly that
// payload, whether fed whole or byte by byte.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/rsp/framing.h"
#include "protocol/rsp/request.h"

using dbgstub::rsp::FrameEvent;
using dbgstub::rsp::Framer;

namespace {

// The round trip must be exact; anything else is a bug worth a crash.
void check_round_trip(std::string_view payload, bool bytewise) {
  std::string framed = dbgstub::rsp::frame_packet(payload);
  // Escaping at most doubles the body; the limit applies to the raw body.
  Framer f(2 * payload.size() + 16);
  std::vector<FrameEvent> out;
  if (bytewise) {
    for (char c : framed) f.feed(std::string_view(&c, 1), out);
  } else {
    f.feed(framed, out);
  }
  if (out.size() != 1 || out[0].kind != FrameEvent::Kind::Packet || out[0].payload != payload ||
      f.in_packet())
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // Byte 0: packet limit (small limits exercise Oversize). Byte 1: seed
  // for the chunk sizes.
  static constexpr std::size_t kLimits[] = {1, 2, 7, 16, 64, 255, 1024, 16384};
  std::size_t limit = kLimits[data[0] & 7];
  uint32_t rng = data[1] | 1u;
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  Framer framer(limit);
  std::vector<FrameEvent> events;
  std::size_t pos = 0;
  while (pos < stream.size()) {
    // xorshift: cheap, deterministic chunk sizes from 1 to 32 bytes.
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    std::size_t n = 1 + (rng & 31);
    if (n > stream.size() - pos) n = stream.size() - pos;
    framer.feed(stream.substr(pos, n), events);
    pos += n;
  }

  for (const FrameEvent& e : events) {
    if (e.kind != FrameEvent::Kind::Packet) continue;
    // The Framer promises memory bounded by its limit.
    if (e.payload.size() > limit) __builtin_trap();
    auto req = dbgstub::rsp::parse_request(e.payload);
    (void)req;
    check_round_trip(e.payload, false);
  }
  // The stream itself as a payload: arbitrary bytes, including '$', '#',
  // '}', '*' and 0x03.
  check_round_trip(stream, stream.size() < 256);
  return 0;
}

// libFuzzer target: the KD (kdcom) codec on an arbitrary byte stream from
// the host, and the ack/resend/reset state machine fed what it decodes.
//
// Input: byte 0 seeds the chunk sizes and the "timer" actions; the rest is
// the stream as WinDbg would send it over the serial line (leaders,
// 16-byte headers, payloads, 0xAA trailers, 0x62 break-ins, junk).
//
// The stream is fed to a KdFramer in chunks of 1 to 64 bytes; every event
// goes to a SessionState as KdSession does it. The stub's side is played
// too: each delivered packet is answered with a data packet (so that acks,
// resends, resets and implied acks meet a pending packet), and between
// chunks the "resend timer" may fire or a debug print be abandoned.
//
// Checked: the framer's promises (payloads within PACKET_MAX_SIZE and at
// least their type's header, whole-stream and chunked feeding give the same
// non-junk events), exact round trips of every decoded packet through
// frame_data_packet/frame_control_packet, that every byte string the state
// machine sends is one well-formed packet, and that the packet ids stay in
// the set kdcom allows.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "protocol/kd/framing.h"
#include "protocol/kd/session_state.h"

namespace kd = dbgstub::kd;

namespace {

[[noreturn]] void fail() { __builtin_trap(); }

bool same_event(const kd::KdEvent& a, const kd::KdEvent& b) {
  if (a.index() != b.index()) return false;
  if (auto* d = std::get_if<kd::DataPacket>(&a)) {
    auto& e = std::get<kd::DataPacket>(b);
    return d->type == e.type && d->id == e.id && d->payload == e.payload;
  }
  if (auto* c = std::get_if<kd::ControlPacket>(&a)) {
    auto& e = std::get<kd::ControlPacket>(b);
    return c->type == e.type && c->id == e.id;
  }
  if (auto* f = std::get_if<kd::FrameError>(&a)) {
    auto& e = std::get<kd::FrameError>(b);
    return f->kind == e.kind && f->type == e.type && f->id == e.id;
  }
  return true;  // BreakIn
}

bool is_junk(const kd::KdEvent& e) {
  auto* f = std::get_if<kd::FrameError>(&e);
  return f && f->kind == kd::FrameError::Kind::Junk;
}

// a and b are the same events once junk is left out of both (compared in
// place rather than through filtered copies).
bool same_without_junk(const std::vector<kd::KdEvent>& a, const std::vector<kd::KdEvent>& b) {
  std::size_t i = 0, j = 0;
  for (;;) {
    while (i < a.size() && is_junk(a[i])) ++i;
    while (j < b.size() && is_junk(b[j])) ++j;
    if (i == a.size() || j == b.size()) return i == a.size() && j == b.size();
    if (!same_event(a[i++], b[j++])) return false;
  }
}

// The events of the one-packet checks below: one vector for all of them,
// emptied after each use, rather than an allocation per check. Nothing of
// an input may outlive it (a vector grown during an input, an event's
// payload left in it): libFuzzer runs an input that ends with more
// allocations than frees a second time, under a leak check. Hence the
// reserve in LLVMFuzzerInitialize and the clear() at the end of each check.
std::vector<kd::KdEvent>* scratch = nullptr;

// The event lists of one input (whole stream, chunked run, one chunk), kept
// from input to input with their capacity rather than grown from nothing
// each time: every growth was an allocation, filled and paged in under
// ASan. Reserved for the default 4096-byte inputs (at most about one event
// per byte); a longer input grows them once (libFuzzer then runs it again
// under a leak check, and finds none). Cleared at the end of each input.
struct Lists {
  std::vector<kd::KdEvent> whole, chunked, events;
};
Lists* lists = nullptr;

// One framed packet fed to a fresh framer must come back as exactly that
// one event, and leave the framer idle.
void check_single(kd::ByteView framed, const kd::KdEvent& want) {
  kd::KdFramer f;
  std::vector<kd::KdEvent>& out = *scratch;
  f.feed(framed, out);
  if (out.size() != 1 || !same_event(out[0], want) || f.in_packet()) fail();
  out.clear();
}

void check_event(const kd::KdEvent& e) {
  if (auto* d = std::get_if<kd::DataPacket>(&e)) {
    if (d->payload.size() > kd::kPacketMaxSize) fail();
    if (d->payload.size() < kd::min_payload_size(d->type)) fail();
    auto framed = kd::frame_data_packet(d->type, d->id, d->payload);
    if (!framed) fail();
    check_single(kd::ByteView(*framed), e);
    // The same packet without its trailer (KDNET's layout) decodes too.
    auto u = kd::decode_unframed_packet(kd::ByteView(*framed).first(framed->size() - 1));
    if (!u || u->header.type != d->type || u->header.id != d->id || u->payload != d->payload) fail();
  } else if (auto* c = std::get_if<kd::ControlPacket>(&e)) {
    check_single(kd::ByteView(kd::frame_control_packet(c->type, c->id)), e);
  }
}

// What the state machine writes must each be one well-formed packet.
void check_sent(const kd::Bytes& b) {
  kd::KdFramer f;
  std::vector<kd::KdEvent>& out = *scratch;
  f.feed(kd::ByteView(b), out);
  if (out.size() != 1 || f.in_packet()) fail();
  if (!std::holds_alternative<kd::DataPacket>(out[0]) && !std::holds_alternative<kd::ControlPacket>(out[0])) fail();
  out.clear();
}

void check_sent(const std::vector<kd::Bytes>& sent) {
  for (const auto& b : sent) check_sent(b);
}

void check_ids(const kd::SessionState& s) {
  // Outgoing: 0x80800800 until the first ack, then 0x80800000/1.
  uint32_t send = s.next_send_id();
  if (send != (kd::kInitialPacketId | kd::kSyncPacketId) && (send & ~1u) != kd::kInitialPacketId) fail();
  if ((s.expected_receive_id() & ~1u) != kd::kInitialPacketId) fail();
}

struct Rng {
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  scratch = new std::vector<kd::KdEvent>;
  scratch->reserve(16);  // the checks expect one event; more is a failure
  lists = new Lists;
  lists->whole.reserve(4096);
  lists->chunked.reserve(4096);
  lists->events.reserve(64);  // a chunk is at most 64 bytes
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Rng rng{(static_cast<uint32_t>(data[0]) << 8) | 0x9e37u};
  kd::ByteView stream(data + 1, size - 1);

  // The stream fed whole, as the reference for the chunked run.
  std::vector<kd::KdEvent>& whole = lists->whole;
  {
    kd::KdFramer f;
    f.feed(stream, whole);
  }
  for (const auto& e : whole) check_event(e);

  // Whatever the stream is, as one KDNET-style packet.
  if (auto u = kd::decode_unframed_packet(stream)) {
    if (u->header.is_control()) {
      if (!u->payload.empty()) fail();
    } else {
      check_event(kd::DataPacket{u->header.type, u->header.id, u->payload});
    }
  }

  kd::KdFramer framer;
  kd::SessionState state;
  std::vector<kd::KdEvent>& chunked = lists->chunked;
  std::vector<kd::KdEvent>& events = lists->events;  // of one chunk
  std::size_t pos = 0;
  while (pos < stream.size()) {
    uint32_t r = rng.next();
    std::size_t n = 1 + (r & 63);
    if (n > stream.size() - pos) n = stream.size() - pos;
    events.clear();
    framer.feed(stream.subspan(pos, n), events);
    pos += n;

    for (auto& ev : events) {
      bool was_pending = state.awaiting_ack();
      uint32_t expected = state.expected_receive_id();
      kd::SessionAction a = state.on_event(ev);
      check_sent(a.send);
      check_ids(state);
      if (a.acked && (!was_pending || state.awaiting_ack())) fail();
      if (a.deliver) {
        auto* d = std::get_if<kd::DataPacket>(&ev);
        if (!d || d->id != expected || was_pending || !same_event(kd::KdEvent(*a.deliver), ev)) fail();
        if (state.expected_receive_id() != (expected ^ 1)) fail();
      }
      if (a.reset && (state.next_send_id() != kd::kInitialPacketId ||
                      state.expected_receive_id() != kd::kInitialPacketId))
        fail();
      // The stub answers with a packet of the same type and size (its
      // replies echo the request); a second send while one is pending must
      // be refused.
      if (a.deliver) {
        bool pending = state.awaiting_ack();
        auto sent = state.send(a.deliver->type, a.deliver->payload);
        if (pending ? bool(sent) : !sent) fail();
        if (sent) check_sent(*sent);
      }
      chunked.push_back(std::move(ev));  // events is cleared before the next chunk
    }

    // Between reads: the resend timer, or a print given up on.
    switch ((r >> 8) & 15) {
      case 0:
        if (auto b = state.resend_pending()) check_sent(*b);
        else if (state.awaiting_ack()) fail();
        break;
      case 1:
        state.abandon_pending();
        if (state.awaiting_ack()) fail();
        break;
      case 2:
        if (!state.awaiting_ack()) {
          // A state change of our own, unprompted (a stop while running).
          kd::Bytes change(kd::WaitStateChange::kSize, 0);
          for (std::size_t i = 0; i < change.size() && i < pos; ++i) change[i] = stream[i];
          auto sent = state.send(kd::kPacketTypeKdStateChange64, change);
          if (!sent) fail();
          check_sent(*sent);
        }
        break;
      default: break;
    }
    check_ids(state);
  }

  // Chunking may split junk runs differently, nothing else.
  if (!same_without_junk(whole, chunked)) fail();
  whole.clear();
  chunked.clear();
  events.clear();
  return 0;
}

#include "protocol/kd/framing.h"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace dbgstub::kd {
namespace {

constexpr std::size_t kMaxJunkNote = 32;  // bytes shown in a Junk note

constexpr char kHexDigits[] = "0123456789abcdef";

}  // namespace

// Without snprintf: notes are built for every damaged packet and junk
// run, and the fuzz build intercepts each snprintf.
std::string hex32(uint32_t v) {
  std::string s = "0x00000000";
  for (int i = 9; i >= 2; --i, v >>= 4) s[static_cast<std::size_t>(i)] = kHexDigits[v & 15];
  return s;
}

namespace {

// Constructs the event in place (also sidesteps GCC 12's false
// -Wmaybe-uninitialized on moving a temporary variant).
template <class T>
void emit(std::vector<KdEvent>& out, T&& ev) {
  out.emplace_back(std::in_place_type<std::decay_t<T>>, std::forward<T>(ev));
}

bool is_leader_byte(uint8_t c) { return c == kPacketLeaderByte || c == kControlPacketLeaderByte; }
// Bytes that mean something outside a packet; the rest is junk there.
bool is_idle_special(uint8_t c) { return c == kBreakinPacketByte || is_leader_byte(c); }

}  // namespace

uint32_t checksum(ByteView payload) {
  uint32_t sum = 0;
  for (uint8_t c : payload) sum += c;
  return sum;
}

std::array<uint8_t, kHeaderSize> encode_header(const PacketHeader& h) {
  ByteWriter w(kHeaderSize);
  w.u32(0, h.leader);
  w.u16(4, h.type);
  w.u16(6, h.byte_count);
  w.u32(8, h.id);
  w.u32(12, h.checksum);
  std::array<uint8_t, kHeaderSize> out{};
  const Bytes& b = w.bytes();
  std::copy(b.begin(), b.end(), out.begin());
  return out;
}

Result<PacketHeader> decode_header(ByteView bytes) {
  if (bytes.size() < kHeaderSize) return make_error(22, "KD header: " + std::to_string(bytes.size()) + " bytes, need 16");
  ByteReader r(bytes);
  PacketHeader h;
  h.leader = r.u32(0);
  h.type = r.u16(4);
  h.byte_count = r.u16(6);
  h.id = r.u32(8);
  h.checksum = r.u32(12);
  if (h.leader != kPacketLeader && h.leader != kControlPacketLeader) {
    return make_error(22, "KD header: bad leader " + hex32(h.leader));
  }
  return h;
}

std::size_t min_payload_size(uint16_t type) {
  switch (type) {
    case kPacketTypeKdStateManipulate: return ManipulateState64::kSize;
    case kPacketTypeKdDebugIo: return DebugIo::kSize;
    case kPacketTypeKdStateChange64: return WaitStateChange::kSize;
    case kPacketTypeKdFileIo: return FileIo::kSize;
    case kPacketTypeKdTraceIo: return 0x40;        // DBGKD_TRACE_IO
    case kPacketTypeKdControlRequest: return 0x0C;  // DBGKD_CONTROL_REQUEST
    default: return 0;
  }
}

Result<Bytes> frame_data_packet(uint16_t type, uint32_t id, ByteView payload) {
  if (payload.size() > kPacketMaxSize) {
    return make_error(22, "KD packet payload of " + std::to_string(payload.size()) + " bytes exceeds PACKET_MAX_SIZE");
  }
  PacketHeader h{kPacketLeader, type, static_cast<uint16_t>(payload.size()), id, checksum(payload)};
  auto head = encode_header(h);
  Bytes out;
  out.reserve(kHeaderSize + payload.size() + 1);
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), payload.begin(), payload.end());
  out.push_back(kPacketTrailingByte);
  return out;
}

Bytes frame_control_packet(uint16_t type, uint32_t id) {
  auto head = encode_header(PacketHeader{kControlPacketLeader, type, 0, id, 0});
  return Bytes(head.begin(), head.end());
}

Result<UnframedPacket> decode_unframed_packet(ByteView bytes) {
  auto h = decode_header(bytes);
  if (!h) return h.error();
  ByteView payload = bytes.subspan(kHeaderSize);
  if (payload.size() != h->byte_count) {
    return make_error(22, "KD packet: ByteCount " + std::to_string(h->byte_count) + " but " +
                              std::to_string(payload.size()) + " payload bytes");
  }
  if (h->is_control()) {
    if (h->byte_count != 0) return make_error(22, "KD control packet with payload");
    return UnframedPacket{*h, {}};
  }
  if (payload.size() > kPacketMaxSize) return make_error(22, "KD packet exceeds PACKET_MAX_SIZE");
  if (payload.size() < min_payload_size(h->type)) return make_error(22, "KD packet shorter than its message header");
  uint32_t sum = checksum(payload);
  if (sum != h->checksum) {
    return make_error(22, "KD packet: checksum " + hex32(h->checksum) + ", computed " + hex32(sum));
  }
  return UnframedPacket{*h, Bytes(payload.begin(), payload.end())};
}

ControlKind ControlPacket::kind() const {
  switch (type) {
    case kPacketTypeKdAcknowledge: return ControlKind::Acknowledge;
    case kPacketTypeKdResend: return ControlKind::Resend;
    case kPacketTypeKdReset: return ControlKind::Reset;
    default: return ControlKind::Other;
  }
}

void KdFramer::reset() {
  state_ = State::Idle;
  leader_count_ = 0;
  header_len_ = 0;
  payload_.clear();
  in_breakin_run_ = false;
  junk_count_ = 0;
  junk_note_.clear();
}

void KdFramer::add_junk(uint8_t c) {
  if (junk_count_ < kMaxJunkNote) {
    junk_note_ += kHexDigits[c >> 4];  // "%02x"
    junk_note_ += kHexDigits[c & 15];
  }
  ++junk_count_;
}

void KdFramer::flush_junk(std::vector<KdEvent>& out) {
  if (junk_count_ == 0) return;
  std::string note = std::to_string(junk_count_) + " junk byte(s) outside packets: " + junk_note_;
  if (junk_count_ > kMaxJunkNote) note += "...";
  emit<FrameError>(out, FrameError{FrameError::Kind::Junk, 0, 0, std::move(note)});
  junk_count_ = 0;
  junk_note_.clear();
}

void KdFramer::start_leader(uint8_t c) {
  state_ = State::Leader;
  leader_byte_ = c;
  leader_count_ = 1;
}

void KdFramer::feed(ByteView bytes, std::vector<KdEvent>& out) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    // Header and payload bytes are taken as far as the chunk goes, not one
    // step() each (what step() would do with them, at once).
    if (state_ == State::Header) {
      std::size_t n = std::min(kHeaderSize - 4 - header_len_, bytes.size() - i);
      std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(i), n, header_.begin() + 4 + static_cast<std::ptrdiff_t>(header_len_));
      header_len_ += n;
      i += n;
      if (header_len_ == kHeaderSize - 4) header_done(out);
    } else if (state_ == State::Payload) {
      std::size_t n = std::min<std::size_t>(current_.byte_count - payload_.size(), bytes.size() - i);
      auto from = bytes.begin() + static_cast<std::ptrdiff_t>(i);
      payload_.insert(payload_.end(), from, from + static_cast<std::ptrdiff_t>(n));
      i += n;
      if (payload_.size() == current_.byte_count) state_ = State::Trailer;
    } else if (state_ == State::Idle && !is_idle_special(bytes[i])) {
      // A run of junk, as step() would take it byte by byte: it ends a
      // break-in run and is counted (the first bytes noted).
      std::size_t j = i + 1;
      while (j < bytes.size() && !is_idle_special(bytes[j])) ++j;
      in_breakin_run_ = false;
      for (std::size_t k = i; k < j && junk_count_ + (k - i) < kMaxJunkNote; ++k) {
        junk_note_ += kHexDigits[bytes[k] >> 4];
        junk_note_ += kHexDigits[bytes[k] & 15];
      }
      junk_count_ += j - i;
      i = j;
    } else {
      step(bytes[i++], out);
    }
  }
  if (state_ == State::Idle) flush_junk(out);
}

void KdFramer::step(uint8_t c, std::vector<KdEvent>& out) {
  switch (state_) {
    case State::Idle:
      if (c == kBreakinPacketByte) {
        // 0x62 or BREAKIN_PACKET (0x62626262): one event per run.
        if (!in_breakin_run_) {
          flush_junk(out);
          emit<BreakIn>(out, BreakIn{});
        }
        in_breakin_run_ = true;
        return;
      }
      in_breakin_run_ = false;
      if (is_leader_byte(c)) {
        start_leader(c);
      } else {
        add_junk(c);
      }
      return;
    case State::Leader:
      if (c == leader_byte_) {
        if (++leader_count_ == 4) {
          flush_junk(out);
          state_ = State::Header;
          header_len_ = 0;
        }
        return;
      }
      // A broken leader: its bytes were junk; this byte starts over.
      for (int i = 0; i < leader_count_; ++i) add_junk(leader_byte_);
      state_ = State::Idle;
      leader_count_ = 0;
      step(c, out);
      return;
    case State::Header: {
      header_[4 + header_len_++] = c;
      if (header_len_ == kHeaderSize - 4) header_done(out);
      return;
    }
    case State::Payload:
      payload_.push_back(c);
      if (payload_.size() == current_.byte_count) state_ = State::Trailer;
      return;
    case State::Trailer:
      if (c == kPacketTrailingByte) {
        finish_data(out);
      } else {
        emit<FrameError>(out, FrameError{FrameError::Kind::BadTrailer, current_.type, current_.id,
                                 "expected 0xAA trailer after packet " + hex32(current_.id)});
        state_ = State::Idle;
        payload_.clear();
        step(c, out);  // it may begin the next packet
      }
      return;
  }
}

void KdFramer::header_done(std::vector<KdEvent>& out) {
  for (int i = 0; i < 4; ++i) header_[i] = leader_byte_;
  // Cannot fail: 16 bytes with one of the two leaders.
  current_ = decode_header(ByteView(header_.data(), header_.size())).value();
  state_ = State::Idle;
  leader_count_ = 0;
  if (current_.is_control()) {
    emit<ControlPacket>(out, ControlPacket{current_.type, current_.id});
    return;
  }
  if (current_.byte_count > kPacketMaxSize) {
    emit<FrameError>(out, FrameError{FrameError::Kind::Oversize, current_.type, current_.id,
                             "ByteCount " + std::to_string(current_.byte_count) + " exceeds PACKET_MAX_SIZE"});
    return;
  }
  if (current_.byte_count < min_payload_size(current_.type)) {
    emit<FrameError>(out, FrameError{FrameError::Kind::BadLength, current_.type, current_.id,
                             "ByteCount " + std::to_string(current_.byte_count) + " below the " +
                                 std::to_string(min_payload_size(current_.type)) + "-byte header of type " +
                                 std::to_string(current_.type)});
    return;
  }
  payload_.clear();
  payload_.reserve(current_.byte_count);
  state_ = current_.byte_count == 0 ? State::Trailer : State::Payload;
}

void KdFramer::finish_data(std::vector<KdEvent>& out) {
  state_ = State::Idle;
  uint32_t sum = checksum(payload_);
  if (sum != current_.checksum) {
    emit<FrameError>(out, FrameError{FrameError::Kind::BadChecksum, current_.type, current_.id,
                             "checksum " + hex32(current_.checksum) + ", computed " + hex32(sum)});
    payload_.clear();
    return;
  }
  emit<DataPacket>(out, DataPacket{current_.type, current_.id, std::move(payload_)});
  payload_ = Bytes();
}

}  // namespace dbgstub::kd

// KD serial (kdcom) framing: turns the byte stream from the host into
// events (data packets, control packets, break-ins, errors) and builds
// framed packets. No I/O and no id bookkeeping here (see session_state.h).
//
// Wire format: a 16-byte header (PacketLeader u32, PacketType u16,
// ByteCount u16, PacketId u32, Checksum u32, little-endian), then for data
// packets ByteCount payload bytes and a 0xAA trailer. Control packets
// (ACKNOWLEDGE/RESEND/RESET) are the header alone. A lone 0x62 outside a
// packet is a break-in request.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "protocol/kd/structs.h"
#include "protocol/kd/wire.h"

namespace dbgstub::kd {

inline constexpr uint32_t kPacketLeader = 0x30303030;
inline constexpr uint32_t kControlPacketLeader = 0x69696969;
inline constexpr uint8_t kPacketLeaderByte = 0x30;
inline constexpr uint8_t kControlPacketLeaderByte = 0x69;
inline constexpr uint8_t kBreakinPacketByte = 0x62;
inline constexpr uint32_t kBreakinPacket = 0x62626262;
inline constexpr uint8_t kPacketTrailingByte = 0xAA;
inline constexpr std::size_t kPacketMaxSize = 4000;  // PACKET_MAX_SIZE
inline constexpr std::size_t kHeaderSize = 16;
inline constexpr uint32_t kInitialPacketId = 0x80800000;
inline constexpr uint32_t kSyncPacketId = 0x00000800;

// 32-bit sum of the payload bytes.
uint32_t checksum(ByteView payload);

// "0x%08x": packet ids, leaders and checksums in notes and errors.
std::string hex32(uint32_t v);

struct PacketHeader {
  uint32_t leader = kPacketLeader;
  uint16_t type = 0;
  uint16_t byte_count = 0;
  uint32_t id = 0;
  uint32_t checksum = 0;
  bool is_control() const { return leader == kControlPacketLeader; }
  bool operator==(const PacketHeader&) const = default;
};

std::array<uint8_t, kHeaderSize> encode_header(const PacketHeader& h);
// Decodes the first 16 bytes; fails on short input or an unknown leader.
Result<PacketHeader> decode_header(ByteView bytes);

// Smallest payload for data packet types with a fixed message header
// (0 for types without one). Shorter packets are BadLength.
std::size_t min_payload_size(uint16_t type);

// header + payload + 0xAA. Fails if the payload exceeds PACKET_MAX_SIZE.
Result<Bytes> frame_data_packet(uint16_t type, uint32_t id, ByteView payload);
// The 16-byte control header (ByteCount 0, Checksum 0).
Bytes frame_control_packet(uint16_t type, uint32_t id);

// A packet laid out as header + payload without the trailer (KDNET carries
// KD packets this way; the test vectors use it). Checks the leader, that
// ByteCount matches the payload, the size limit and the checksum.
struct UnframedPacket {
  PacketHeader header;
  Bytes payload;
};
Result<UnframedPacket> decode_unframed_packet(ByteView bytes);

// ---- Events ----------------------------------------------------------------

struct DataPacket {
  uint16_t type = 0;
  uint32_t id = 0;
  Bytes payload;  // checksum verified
};

enum class ControlKind { Acknowledge, Resend, Reset, Other };

struct ControlPacket {
  uint16_t type = 0;
  uint32_t id = 0;
  ControlKind kind() const;
};

struct BreakIn {};

struct FrameError {
  enum class Kind {
    BadLength,    // ByteCount smaller than the message header of its type
    BadChecksum,  // complete packet, checksum mismatch
    BadTrailer,   // the byte after the payload was not 0xAA
    Oversize,     // ByteCount above PACKET_MAX_SIZE; nothing was buffered
    Junk,         // bytes outside packets (note holds a bounded hex prefix)
  };
  Kind kind;
  uint16_t type = 0;  // of the damaged packet (not for Junk)
  uint32_t id = 0;
  std::string note;
  // A damaged data packet: the receiver answers with RESEND.
  bool wants_resend() const { return kind != Kind::Junk; }
};

using KdEvent = std::variant<DataPacket, ControlPacket, BreakIn, FrameError>;

// Incremental decoder. Feed any chunking of the stream; complete events are
// appended in order. Memory is bounded by PACKET_MAX_SIZE regardless of the
// input. After a damaged header or payload the framer resynchronizes on the
// next four-byte leader, as kdcom does.
class KdFramer {
 public:
  void feed(ByteView bytes, std::vector<KdEvent>& out);
  void feed(std::string_view bytes, std::vector<KdEvent>& out) { feed(as_bytes(bytes), out); }
  // True while in the middle of a packet (leader, header, payload, trailer).
  bool in_packet() const { return state_ != State::Idle; }
  // Drops any partial packet (e.g. after a timeout).
  void reset();

 private:
  enum class State { Idle, Leader, Header, Payload, Trailer };
  void step(uint8_t c, std::vector<KdEvent>& out);
  void add_junk(uint8_t c);
  void flush_junk(std::vector<KdEvent>& out);
  void start_leader(uint8_t c);
  void header_done(std::vector<KdEvent>& out);
  void finish_data(std::vector<KdEvent>& out);

  State state_ = State::Idle;
  uint8_t leader_byte_ = 0;
  int leader_count_ = 0;
  std::array<uint8_t, kHeaderSize> header_{};
  std::size_t header_len_ = 0;
  PacketHeader current_{};
  Bytes payload_;
  bool in_breakin_run_ = false;
  std::size_t junk_count_ = 0;
  std::string junk_note_;
};

}  // namespace dbgstub::kd

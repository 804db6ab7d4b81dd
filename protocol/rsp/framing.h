// RSP packet framing: turns a byte stream from the wire into events
// (packets, acks, interrupts, errors) and payloads into framed bytes.
// No I/O here: the session feeds bytes in and writes what comes out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dbgstub::rsp {

// Modulo-256 sum of the bytes between '$' and '#'.
uint8_t checksum(std::string_view payload);

// Escapes '#', '$', '}' and '*' as '}' followed by the byte xor 0x20.
std::string escape_binary(std::string_view raw);

// Builds "$<payload>#xx". The payload is sent as given except that any
// byte that would break framing ('#', '$', '}', '*') is escaped, so binary
// replies (x, qXfer) can be passed in raw.
std::string frame_packet(std::string_view payload);

// Builds "%<payload>#xx" (non-stop notifications).
std::string frame_notification(std::string_view payload);

// Bytes from the wire, safe for a log line: printable ASCII as is, anything
// else (and '\\') as \xNN, so the text can be turned back into the bytes
// (scripts/fuzz-seed-from-log.py) and carries no terminal control
// sequences. At most `limit` bytes are shown, then "...".
std::string printable(std::string_view bytes, std::size_t limit = std::string_view::npos);

struct FrameEvent {
  enum class Kind {
    Packet,       // a complete packet with a good checksum; payload is decoded
    Ack,          // '+'
    Nack,         // '-': the peer wants our last packet again
    Interrupt,    // 0x03 outside a packet
    BadChecksum,  // a complete packet whose checksum did not match
    Oversize,     // a packet longer than the limit; its bytes were dropped
    Malformed,    // bad escape/RLE, or junk bytes outside packets
  };
  Kind kind;
  std::string payload;  // Packet: unescaped, RLE-expanded; others: a short note
};

// Incremental decoder. Feed any chunking of the byte stream; complete
// events are appended in order. Memory use is bounded by max_packet.
class Framer {
 public:
  explicit Framer(std::size_t max_packet = 16384) : max_packet_(max_packet) {}
  void feed(std::string_view bytes, std::vector<FrameEvent>& out);
  // True while in the middle of a packet (for idle/timeout decisions).
  bool in_packet() const { return state_ != State::Idle; }
  std::size_t max_packet() const { return max_packet_; }

 private:
  enum class State { Idle, Body, Check1, Check2 };
  void finish(std::vector<FrameEvent>& out);
  std::size_t max_packet_;
  State state_ = State::Idle;
  std::string body_;    // raw bytes between '$' and '#'
  bool overflow_ = false;
  char check_hi_ = 0;
  std::string junk_;    // bytes outside packets, reported once
};

// Expands escapes and run-length encoding of a raw packet body. Fails on a
// dangling escape, RLE with nothing to repeat, or output beyond max_out.
bool decode_body(std::string_view raw, std::size_t max_out, std::string& out);

}  // namespace dbgstub::rsp

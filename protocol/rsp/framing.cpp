#include "protocol/rsp/framing.h"

#include <algorithm>

#include "protocol/rsp/hex.h"

namespace dbgstub::rsp {
namespace {

constexpr char kInterrupt = 0x03;
constexpr char kEscape = '}';
constexpr char kRunLength = '*';
constexpr std::size_t kMaxJunkNote = 64;

constexpr std::string_view kNeedsEscape{"#$}*"};

std::string frame_with(char start, std::string_view payload) {
  std::string body = escape_binary(payload);
  std::string out;
  out.reserve(body.size() + 4);
  out.push_back(start);
  out += body;
  out.push_back('#');
  out += hex_u8(checksum(body));
  return out;
}

// Valid run-length count characters: printable, and never the framing
// characters (GDB avoids emitting those as counts).
bool valid_rle_count(unsigned char c) { return c >= 32 && c <= 126 && c != '#' && c != '$'; }

}  // namespace

uint8_t checksum(std::string_view payload) {
  uint8_t sum = 0;
  for (unsigned char c : payload) sum = static_cast<uint8_t>(sum + c);
  return sum;
}

std::string escape_binary(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 16);
  // Copies the runs between escapes whole: binary replies are up to
  // PacketSize long, and a byte at a time was most of their cost.
  std::size_t i = 0;
  while (i < raw.size()) {
    std::size_t next = raw.find_first_of(kNeedsEscape, i);
    if (next == std::string_view::npos) next = raw.size();
    out.append(raw, i, next - i);
    if (next == raw.size()) break;
    out.push_back(kEscape);
    out.push_back(static_cast<char>(raw[next] ^ 0x20));
    i = next + 1;
  }
  return out;
}

std::string frame_packet(std::string_view payload) { return frame_with('$', payload); }

std::string frame_notification(std::string_view payload) { return frame_with('%', payload); }

std::string printable(std::string_view bytes, std::size_t limit) {
  std::string out;
  for (unsigned char c : bytes.substr(0, limit)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out += hex_u8(c);
    }
  }
  if (bytes.size() > limit) out += "...";
  return out;
}

bool decode_body(std::string_view raw, std::size_t max_out, std::string& out) {
  out.clear();
  out.reserve(std::min(raw.size(), max_out));
  std::size_t i = 0;
  while (i < raw.size()) {
    // The run up to the next escape or run-length mark goes in whole.
    constexpr char kMarks[] = {kEscape, kRunLength, '\0'};
    std::size_t next = raw.find_first_of(kMarks, i);
    if (next == std::string_view::npos) next = raw.size();
    if (out.size() + (next - i) > max_out) return false;
    out.append(raw, i, next - i);
    if (next == raw.size()) break;
    i = next;
    if (raw[i] == kEscape) {
      if (++i >= raw.size()) return false;  // dangling escape
      if (out.size() >= max_out) return false;
      out.push_back(static_cast<char>(raw[i] ^ 0x20));
      ++i;
      continue;
    }
    // "X*n": repeat the previous output byte n-29 more times.
    if (out.empty() || ++i >= raw.size()) return false;
    auto count = static_cast<unsigned char>(raw[i]);
    if (!valid_rle_count(count)) return false;
    std::size_t repeat = count - 29u;
    if (out.size() + repeat > max_out) return false;
    out.append(repeat, out.back());
    ++i;
  }
  return true;
}

void Framer::feed(std::string_view bytes, std::vector<FrameEvent>& out) {
  using K = FrameEvent::Kind;
  auto flush_junk = [&] {
    if (junk_.empty()) return;
    out.push_back({K::Malformed, "junk outside packet: " + printable(junk_)});
    junk_.clear();
  };
  auto start_packet = [&] {
    state_ = State::Body;
    body_.clear();
    overflow_ = false;
  };

  std::size_t i = 0;
  while (i < bytes.size()) {
    char c = bytes[i];
    switch (state_) {
      case State::Idle:
        if (c == '$' || c == '+' || c == '-' || c == kInterrupt) {
          flush_junk();
          if (c == '$') start_packet();
          else if (c == '+') out.push_back({K::Ack, {}});
          else if (c == '-') out.push_back({K::Nack, {}});
          else out.push_back({K::Interrupt, {}});
        } else if (junk_.size() < kMaxJunkNote) {
          // Only a prefix is kept: the note is for a log line, and a flood of
          // junk must not grow memory.
          junk_.push_back(c);
        } else if (junk_.size() == kMaxJunkNote) {
          junk_ += "...";  // marks the truncation; later bytes are ignored
        }
        break;
      case State::Body: {
        // The run up to the next '#' or '$' goes in whole (as much of it as
        // the limit allows): bodies are up to PacketSize of binary data.
        std::size_t end = bytes.find_first_of("#$", i);
        if (end == std::string_view::npos) end = bytes.size();
        if (end > i) {
          std::size_t room = max_packet_ > body_.size() ? max_packet_ - body_.size() : 0;
          std::size_t take = std::min(room, end - i);
          body_.append(bytes, i, take);
          // Keep consuming until '#' so the rest of the oversize packet
          // (binary data) isn't mistaken for acks or interrupts.
          if (take < end - i) overflow_ = true;
          i = end;
          continue;
        }
        if (c == '#') {
          state_ = State::Check1;
        } else if (c == '$') {
          // GDB restarts on '$' (the previous packet lost its '#'); '$'
          // can't occur in a body since binary data escapes it.
          start_packet();
        }
        break;
      }
      case State::Check1:
      case State::Check2:
        if (c == '$') {
          start_packet();
        } else if (hex_digit(c) < 0) {
          // Garbled checksum: report it and let Idle look at this byte again,
          // since it may be a '+' or an interrupt.
          state_ = State::Idle;
          out.push_back({K::BadChecksum, "non-hex checksum digit"});
          continue;
        } else if (state_ == State::Check1) {
          check_hi_ = c;
          state_ = State::Check2;
        } else {
          state_ = State::Idle;
          // check_hi_ now carries the whole received checksum byte to finish().
          check_hi_ = static_cast<char>((hex_digit(check_hi_) << 4) | hex_digit(c));
          finish(out);
        }
        break;
    }
    ++i;
  }
}

void Framer::finish(std::vector<FrameEvent>& out) {
  using K = FrameEvent::Kind;
  if (overflow_) {
    out.push_back({K::Oversize, "packet longer than " + std::to_string(max_packet_) + " bytes"});
  } else {
    auto sent = static_cast<uint8_t>(check_hi_);
    uint8_t computed = checksum(body_);
    std::string decoded;
    if (sent != computed) {
      out.push_back({K::BadChecksum, "checksum " + hex_u8(sent) + ", computed " + hex_u8(computed)});
    } else if (!decode_body(body_, max_packet_, decoded)) {
      out.push_back({K::Malformed, "bad escape or run-length encoding in packet"});
    } else {
      out.push_back({K::Packet, std::move(decoded)});
    }
  }
  body_.clear();
  overflow_ = false;
}

}  // namespace dbgstub::rsp

#include "protocol/rsp/hex.h"

namespace dbgstub::rsp {
namespace {

constexpr char kDigits[] = "0123456789abcdef";

}  // namespace

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string to_hex(std::string_view bytes) {
  // Sized once and written by index: every 'm' reply and register dump
  // comes through here, and a push_back per digit costs a bounds check each.
  std::string out(bytes.size() * 2, '\0');
  char* o = out.data();
  for (unsigned char b : bytes) {
    *o++ = kDigits[b >> 4];
    *o++ = kDigits[b & 0xf];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);  // bounded by the input, never by a parsed value
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_digit(hex[i]);
    int lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

std::optional<uint64_t> parse_hex_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = hex_digit(c);
    if (d < 0) return std::nullopt;
    // Leading zeros are fine; a nonzero top nibble means the next shift overflows.
    if (v >> 60) return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

std::string hex_u64(uint64_t v) {
  if (v == 0) return "0";
  std::string out;
  while (v) {
    out.insert(out.begin(), kDigits[v & 0xf]);
    v >>= 4;
  }
  return out;
}

std::string hex_0x(uint64_t v) { return "0x" + hex_u64(v); }

std::string hex_u8(uint8_t v) {
  return std::string{kDigits[v >> 4], kDigits[v & 0xf]};
}

std::string le_bytes(uint64_t v, std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size && i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

uint64_t from_le_bytes(std::string_view bytes) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < bytes.size() && i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return v;
}

}  // namespace dbgstub::rsp

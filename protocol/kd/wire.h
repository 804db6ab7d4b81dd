// Little-endian byte access for the KD structures: a bounds-checked reader
// over untrusted bytes and an appending writer. Header-only helpers shared
// by the kd/*.cpp files and their tests.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace dbgstub::kd {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Reads fixed-width little-endian fields at absolute offsets. Every read is
// bounds-checked: out-of-range reads yield 0 and latch ok() to false, so a
// parser can read a whole structure and check once at the end.
class ByteReader {
 public:
  explicit ByteReader(ByteView bytes) : b_(bytes) {}
  bool ok() const { return ok_; }
  std::size_t size() const { return b_.size(); }

  uint8_t u8(std::size_t off) { return static_cast<uint8_t>(get(off, 1)); }
  uint16_t u16(std::size_t off) { return static_cast<uint16_t>(get(off, 2)); }
  uint32_t u32(std::size_t off) { return static_cast<uint32_t>(get(off, 4)); }
  uint64_t u64(std::size_t off) { return get(off, 8); }
  template <std::size_t N>
  std::array<uint8_t, N> raw(std::size_t off) {
    std::array<uint8_t, N> out{};
    if (!check(off, N)) return out;
    std::memcpy(out.data(), b_.data() + off, N);
    return out;
  }

 private:
  bool check(std::size_t off, std::size_t n) {
    if (off > b_.size() || n > b_.size() - off) {
      ok_ = false;
      return false;
    }
    return true;
  }
  uint64_t get(std::size_t off, std::size_t n) {
    if (!check(off, n)) return 0;
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b_[off + i]) << (8 * i);
    return v;
  }
  ByteView b_;
  bool ok_ = true;
};

// Writes little-endian fields at absolute offsets into a buffer of fixed
// size (set at construction). Writes beyond the end are dropped; callers
// size the buffer from the structure's constant size, so that never happens
// with correct code, and tests compare exact sizes.
class ByteWriter {
 public:
  explicit ByteWriter(std::size_t size) : b_(size, 0) {}
  void u8(std::size_t off, uint8_t v) { put(off, v, 1); }
  void u16(std::size_t off, uint16_t v) { put(off, v, 2); }
  void u32(std::size_t off, uint32_t v) { put(off, v, 4); }
  void u64(std::size_t off, uint64_t v) { put(off, v, 8); }
  void raw(std::size_t off, ByteView bytes) {
    if (off > b_.size() || bytes.size() > b_.size() - off) return;
    if (!bytes.empty()) std::memcpy(b_.data() + off, bytes.data(), bytes.size());
  }
  Bytes take() && { return std::move(b_); }
  const Bytes& bytes() const { return b_; }

 private:
  void put(std::size_t off, uint64_t v, std::size_t n) {
    if (off > b_.size() || n > b_.size() - off) return;
    for (std::size_t i = 0; i < n; ++i) b_[off + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  Bytes b_;
};

}  // namespace dbgstub::kd

// Little-endian byte access for the KD structures: a bounds-checked reader
// over untrusted bytes and an appending writer. Header-only helpers shared
// by the kd/*.cpp files and their tests.
#pragma once
#include <array>
#include <bit>
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

  uint8_t u8(std::size_t off) { return get<uint8_t>(off); }
  uint16_t u16(std::size_t off) { return get<uint16_t>(off); }
  uint32_t u32(std::size_t off) { return get<uint32_t>(off); }
  uint64_t u64(std::size_t off) { return get<uint64_t>(off); }
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
  // One fixed-size copy on a little-endian host rather than a loop per
  // byte: the KD structures are read field by field (a CONTEXT has over a
  // hundred), and in the fuzz build every loop iteration also reported its
  // compare to libFuzzer.
  template <class T>
  T get(std::size_t off) {
    if (!check(off, sizeof(T))) return 0;
    T v = 0;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(&v, b_.data() + off, sizeof(T));
    } else {
      for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>(v | static_cast<T>(static_cast<T>(b_[off + i]) << (8 * i)));
    }
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
  std::size_t size() const { return b_.size(); }
  void u8(std::size_t off, uint8_t v) { put(off, v); }
  void u16(std::size_t off, uint16_t v) { put(off, v); }
  void u32(std::size_t off, uint32_t v) { put(off, v); }
  void u64(std::size_t off, uint64_t v) { put(off, v); }
  void raw(std::size_t off, ByteView bytes) {
    if (off > b_.size() || bytes.size() > b_.size() - off) return;
    if (!bytes.empty()) std::memcpy(b_.data() + off, bytes.data(), bytes.size());
  }
  Bytes take() && { return std::move(b_); }
  const Bytes& bytes() const { return b_; }

 private:
  // As ByteReader::get: one fixed-size copy of the field on a
  // little-endian host; a field that does not fit whole is dropped.
  template <class T>
  void put(std::size_t off, T v) {
    if (off > b_.size() || sizeof(T) > b_.size() - off) return;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(b_.data() + off, &v, sizeof(T));
    } else {
      for (std::size_t i = 0; i < sizeof(T); ++i) b_[off + i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
    }
  }
  Bytes b_;
};

}  // namespace dbgstub::kd

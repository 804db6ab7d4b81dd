// Hex helpers shared by the RSP parsers and reply builders.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dbgstub::rsp {

int hex_digit(char c);  // -1 if not a hex digit
std::string to_hex(std::string_view bytes);
std::optional<std::string> from_hex(std::string_view hex);  // nullopt on odd length / bad digit
// Big-endian hex number as GDB writes addresses and lengths ("7fff0010").
// Rejects empty input, bad digits, and values wider than 64 bits.
std::optional<uint64_t> parse_hex_u64(std::string_view s);
std::string hex_u64(uint64_t v);        // minimal digits, lowercase
std::string hex_0x(uint64_t v);         // "0x" and minimal digits, as logs and notes show addresses
std::string hex_u8(uint8_t v);          // exactly two digits
// Little-endian target byte order: value -> bytes of given size.
std::string le_bytes(uint64_t v, std::size_t size);
uint64_t from_le_bytes(std::string_view bytes);  // up to 8 bytes

}  // namespace dbgstub::rsp

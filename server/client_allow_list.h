// Who may connect to a debugger port ("clients" in a lab file): a list of
// addresses and CIDR ranges, IPv4 and IPv6 ("10.1.0.0/16", "::1",
// "127.0.0.1"). Everything is kept as IPv6, IPv4 as v4-mapped
// (::ffff:a.b.c.d), so a v4 client seen on a v6 socket matches the v4 entry
// that names it. A refused client is closed before it can send a packet
// (server/plumbing/server.cpp), so the list is checked on the peer address
// alone; it is not authentication, only a narrowing of who can reach a port.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dbgstub {

struct AddressRange {
  std::array<uint8_t, 16> net{};  // IPv6 (IPv4 as ::ffff:a.b.c.d), host bits zero
  int prefix = 128;               // leading bits that must match
  std::string text;               // as written in the file, for messages
};

// "ADDR" or "ADDR/PREFIX" (IPv4: 0-32, IPv6: 0-128). Host bits set under the
// prefix ("10.1.2.3/16") are an error: the entry would not mean what it says.
Result<AddressRange> parse_address_range(std::string_view text);
// An address as the kernel gives it (dotted quad, or IPv6 text with or
// without a v4-mapped tail), as 16 bytes.
Result<std::array<uint8_t, 16>> parse_address(std::string_view text);

class ClientAllowList {
 public:
  ClientAllowList() = default;  // an empty list allows everyone (no "clients" given)
  // Each entry parsed; an error names the entry's index ("[1]: ...").
  static Result<ClientAllowList> parse(const std::vector<std::string>& entries);
  bool restricts() const { return !ranges_.empty(); }
  bool allows(const std::array<uint8_t, 16>& addr) const;
  // The peer's address as text (asio's to_string()); unparsable is refused.
  bool allows(std::string_view addr_text) const;
  std::string describe() const;  // "10.1.0.0/16, ::1"
  const std::vector<AddressRange>& ranges() const { return ranges_; }
  bool operator==(const ClientAllowList& o) const { return describe() == o.describe(); }

 private:
  std::vector<AddressRange> ranges_;
};

}  // namespace dbgstub

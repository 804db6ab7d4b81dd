#include "server/client_allow_list.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace dbgstub {

Result<std::array<uint8_t, 16>> parse_address(std::string_view text) {
  std::string s(text);
  // A scope ("fe80::1%eth0") names an interface, not an address.
  if (auto pct = s.find('%'); pct != std::string::npos) s.resize(pct);
  std::array<uint8_t, 16> out{};
  in_addr v4{};
  if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(&out[12], &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return make_error(22, "'" + std::string(text) + "' is not an IPv4 or IPv6 address");
}

Result<AddressRange> parse_address_range(std::string_view text) {
  AddressRange r;
  r.text = std::string(text);
  std::string_view addr = text;
  std::string_view bits;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    bits = text.substr(slash + 1);
  }
  auto a = parse_address(addr);
  if (!a) return a.error();
  bool v4 = addr.find(':') == std::string_view::npos;
  int max = v4 ? 32 : 128;
  int prefix = max;
  if (text.find('/') != std::string_view::npos) {
    auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (bits.empty() || ec != std::errc() || p != bits.data() + bits.size() || prefix < 0 || prefix > max)
      return make_error(22, "'" + r.text + "': the prefix length must be 0-" + std::to_string(max));
  }
  r.prefix = v4 ? prefix + 96 : prefix;
  r.net = *a;
  for (int i = r.prefix; i < 128; ++i)
    if (r.net[i / 8] & (0x80 >> (i % 8)))
      return make_error(22, "'" + r.text + "' has address bits set beyond its prefix /" + std::to_string(prefix));
  return r;
}

Result<ClientAllowList> ClientAllowList::parse(const std::vector<std::string>& entries) {
  ClientAllowList list;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto r = parse_address_range(entries[i]);
    if (!r) return make_error(22, "[" + std::to_string(i) + "]: " + r.error().message);
    list.ranges_.push_back(std::move(*r));
  }
  return list;
}

bool ClientAllowList::allows(const std::array<uint8_t, 16>& addr) const {
  if (ranges_.empty()) return true;
  for (auto& r : ranges_) {
    bool match = true;
    for (int i = 0; i < r.prefix && match; ++i) {
      uint8_t bit = 0x80 >> (i % 8);
      match = (addr[i / 8] & bit) == (r.net[i / 8] & bit);
    }
    if (match) return true;
  }
  return false;
}

bool ClientAllowList::allows(std::string_view addr_text) const {
  if (ranges_.empty()) return true;
  auto a = parse_address(addr_text);
  return a && allows(*a);
}

std::string ClientAllowList::describe() const {
  std::string s;
  for (auto& r : ranges_) s += (s.empty() ? "" : ", ") + r.text;
  return s;
}

}  // namespace dbgstub

// "clients": who may connect to a debugger port.
#include <doctest/doctest.h>

#include "server/client_allow_list.h"
#include "server/lab/lab_config.h"

using namespace dbgstub;

namespace {
ClientAllowList list_of(const std::vector<std::string>& entries) {
  auto l = ClientAllowList::parse(entries);
  REQUIRE_MESSAGE(l, (l ? "" : l.error().message));
  return *l;
}
std::string error_of(const std::string& entry) {
  auto r = parse_address_range(entry);
  return r ? std::string("(no error)") : r.error().message;
}
}  // namespace

TEST_CASE("clients: IPv4 ranges and single addresses") {
  auto l = list_of({"10.1.0.0/16", "127.0.0.1"});
  CHECK(l.restricts());
  CHECK(l.allows("10.1.0.0"));
  CHECK(l.allows("10.1.255.7"));
  CHECK_FALSE(l.allows("10.2.0.1"));
  CHECK(l.allows("127.0.0.1"));
  CHECK_FALSE(l.allows("127.0.0.2"));
  CHECK(list_of({"0.0.0.0/0"}).allows("203.0.113.9"));
  CHECK_FALSE(list_of({"0.0.0.0/0"}).allows("::1"));  // all of IPv4, none of IPv6
  CHECK(list_of({"192.168.1.128/25"}).allows("192.168.1.200"));
  CHECK_FALSE(list_of({"192.168.1.128/25"}).allows("192.168.1.127"));
}

TEST_CASE("clients: IPv6") {
  auto l = list_of({"::1", "fd00:1::/32"});
  CHECK(l.allows("::1"));
  CHECK_FALSE(l.allows("::2"));
  CHECK(l.allows("fd00:1:ffff::5"));
  CHECK_FALSE(l.allows("fd00:2::5"));
  CHECK(l.allows("fe80::1%lo") == false);
  CHECK(list_of({"fe80::/10"}).allows("fe80::1%eth0"));  // the scope names an interface, not an address
  CHECK_FALSE(l.allows("127.0.0.1"));
}

TEST_CASE("clients: a v4 client seen on a v6 socket matches its v4 entry, and the other way round") {
  CHECK(list_of({"127.0.0.1"}).allows("::ffff:127.0.0.1"));
  CHECK(list_of({"10.0.0.0/8"}).allows("::ffff:10.9.8.7"));
  CHECK_FALSE(list_of({"10.0.0.0/8"}).allows("::ffff:11.0.0.1"));
  CHECK(list_of({"::ffff:10.0.0.0/104"}).allows("10.200.0.1"));
}

TEST_CASE("clients: no list allows everyone, an unreadable peer address is refused") {
  ClientAllowList none;
  CHECK_FALSE(none.restricts());
  CHECK(none.allows("203.0.113.9"));
  CHECK_FALSE(list_of({"127.0.0.1"}).allows("not an address"));
  CHECK_FALSE(list_of({"127.0.0.1"}).allows(""));
}

TEST_CASE("clients: bad entries are errors that say why") {
  CHECK(error_of("") == "'' is not an IPv4 or IPv6 address");
  CHECK(error_of("10.1.0") == "'10.1.0' is not an IPv4 or IPv6 address");
  CHECK(error_of("host.example") == "'host.example' is not an IPv4 or IPv6 address");
  CHECK(error_of("10.1.0.0/33") == "'10.1.0.0/33': the prefix length must be 0-32");
  CHECK(error_of("10.1.0.0/") == "'10.1.0.0/': the prefix length must be 0-32");
  CHECK(error_of("10.1.0.0/-1") == "'10.1.0.0/-1': the prefix length must be 0-32");
  CHECK(error_of("10.1.0.0/16x") == "'10.1.0.0/16x': the prefix length must be 0-32");
  CHECK(error_of("::/129") == "'::/129': the prefix length must be 0-128");
  CHECK(error_of("10.1.2.3/16") == "'10.1.2.3/16' has address bits set beyond its prefix /16");
  CHECK(error_of("fd00::1/64") == "'fd00::1/64' has address bits set beyond its prefix /64");
  CHECK(error_of("1.2.3.4/99999999999999999999") == "'1.2.3.4/99999999999999999999': the prefix length must be 0-32");
  auto l = ClientAllowList::parse({"::1", "nope"});
  REQUIRE_FALSE(l);
  CHECK(l.error().message == "[1]: 'nope' is not an IPv4 or IPv6 address");
}

TEST_CASE("clients in a lab file: the lab's, a VM's own replaces it") {
  auto cfg = parse_lab_config(R"({"clients": ["10.1.0.0/16", "::1"], "vms": [
      {"name": "vm1", "listen": ":2345", "gdbstub": ":1234"},
      {"name": "vm2", "listen": ":2346", "gdbstub": ":1235", "clients": ["127.0.0.2/32"]}]})");
  REQUIRE(cfg);
  CHECK(cfg->vms[0].clients.describe() == "10.1.0.0/16, ::1");
  CHECK(cfg->vms[1].clients.describe() == "127.0.0.2/32");
  CHECK_FALSE(cfg->vms[1].clients.allows("127.0.0.1"));
  auto open = parse_lab_config(R"({"vms": [{"name": "vm1", "listen": ":2345", "gdbstub": ":1234"}]})");
  REQUIRE(open);
  CHECK_FALSE(open->vms[0].clients.restricts());
}

TEST_CASE("clients in a lab file: errors name the field") {
  auto err = [](const std::string& text) {
    auto r = parse_lab_config(text);
    return r ? std::string("(no error)") : r.error().message;
  };
  CHECK(err(R"({"clients": [], "vms": [{"name": "a", "listen": ":1", "gdbstub": ":2"}]})")
            .find("clients: must be a non-empty array") == 0);
  CHECK(err(R"({"clients": "::1", "vms": [{"name": "a", "listen": ":1", "gdbstub": ":2"}]})")
            .find("clients: must be a non-empty array") == 0);
  CHECK(err(R"({"clients": ["::1", 5], "vms": [{"name": "a", "listen": ":1", "gdbstub": ":2"}]})") ==
        "clients[1]: must be a string");
  CHECK(err(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":2", "clients": ["10.0.0.1/8"]}]})") ==
        "vms[0].clients[0]: '10.0.0.1/8' has address bits set beyond its prefix /8");
  CHECK(err(R"({"clients": ["::1"], "allow": {"run": ["/bin/true"]}})") == "clients: applies to a lab of VMs (\"vms\")");
}

#include <doctest/doctest.h>

#include "server/options.h"

using namespace dbgstub;

TEST_CASE("options: program mode defaults to loopback") {
  auto o = parse_options({":1234", "/bin/true", "-x"});
  REQUIRE(o.ok());
  CHECK(o->host == "127.0.0.1");
  CHECK(o->port == 1234);
  CHECK(o->program == std::vector<std::string>{"/bin/true", "-x"});
  CHECK_FALSE(o->allow_run);
  CHECK_FALSE(o->allow_attach);
}

TEST_CASE("options: gdbserver-compatible forms") {
  auto a = parse_options({"--attach", "localhost:2000", "42"});
  REQUIRE(a.ok());
  CHECK(a->attach_pid == 42);
  CHECK(a->host == "127.0.0.1");
  auto m = parse_options({"--once", "--multi", "0.0.0.0:0"});
  REQUIRE(m.ok());
  CHECK(m->multi);
  CHECK(m->once);
  CHECK(m->host == "0.0.0.0");
  // Options after COMM belong to the program.
  auto p = parse_options({":1", "prog", "--multi"});
  REQUIRE(p.ok());
  CHECK_FALSE(p->multi);
  CHECK(p->program.back() == "--multi");
}

TEST_CASE("options: errors name the problem") {
  CHECK_FALSE(parse_options({}).ok());
  CHECK_FALSE(parse_options({"1234"}).ok());
  CHECK_FALSE(parse_options({":99999", "p"}).ok());
  CHECK_FALSE(parse_options({":1"}).ok());
  CHECK_FALSE(parse_options({"--attach", ":1", "x"}).ok());
  CHECK_FALSE(parse_options({"--bogus", ":1", "p"}).ok());
  auto e = parse_options({"--log-level"});
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message.find("--log-level") != std::string::npos);
}

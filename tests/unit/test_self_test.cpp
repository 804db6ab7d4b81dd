// dbgstub --selftest's report, in gdbserver's words (gdb.server/unittest.exp
// reads them). The checks themselves run for real in
// tests/integration/test_server_lifecycle.py.
#include <doctest/doctest.h>

#include <sstream>

#include "server/app/self_test.h"

using namespace dbgstub;

TEST_CASE("selftest: a failed check is named and counted, the others still run") {
  std::ostringstream out;
  int ran_after = 0;
  int rc = run_checks(out, {{"good", [] { return std::string(); }},
                            {"bad", [] { return std::string("it broke"); }},
                            {"after", [&] {
                               ++ran_after;
                               return std::string();
                             }}});
  CHECK(rc == 1);
  CHECK(ran_after == 1);
  CHECK(out.str() ==
        "Running selftest good.\nRunning selftest bad.\nSelf test failed: it broke\n"
        "Running selftest after.\nRan 3 unit tests, 1 failed\n");
}

TEST_CASE("selftest: all passed") {
  std::ostringstream out;
  CHECK(run_checks(out, {{"one", [] { return std::string(); }}}) == 0);
  CHECK(out.str() == "Running selftest one.\nRan 1 unit tests, 0 failed\n");
}

// The files the package installs as examples are what dbgstub accepts.
#include <doctest/doctest.h>

#include "server/lab/lab_config.h"

using namespace dbgstub;

TEST_CASE("examples/lab.json (installed under share/doc/dbgstub) is a valid lab") {
  auto cfg = load_lab_config(DBGSTUB_SOURCE_DIR "/examples/lab.json");
  REQUIRE_MESSAGE(cfg, (cfg ? "" : cfg.error().message));
  REQUIRE(cfg->vms.size() == 2);
  CHECK(cfg->vms[0].gdb);
  CHECK(cfg->vms[0].kd);
  CHECK(cfg->vms[1].vm.gdbstub_port == 1235);
}

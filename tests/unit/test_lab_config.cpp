// The lab file (--config): every mistake names its field.
#include <doctest/doctest.h>

#include "server/lab/lab_config.h"
#include "server/app/options.h"

using namespace dbgstub;

namespace {
std::string error_of(const std::string& text) {
  auto r = parse_lab_config(text);
  return r ? std::string("(no error)") : r.error().message;
}
}  // namespace

TEST_CASE("lab config: two VMs, each on its port") {
  auto cfg = parse_lab_config(R"({"vms": [
      {"name": "vm1", "listen": "127.0.0.1:2345", "gdbstub": "127.0.0.1:1234", "qga": "/tmp/vm1.sock"},
      {"name": "vm2", "listen": ":2346", "gdbstub": "localhost:1235", "qmp": "/tmp/vm2-qmp.sock"}]})");
  REQUIRE(cfg);
  REQUIRE(cfg->vms.size() == 2);
  CHECK(cfg->vms[0].name == "vm1");
  CHECK(cfg->vms[0].port == 2345);
  CHECK(cfg->vms[0].vm.gdbstub_port == 1234);
  CHECK(cfg->vms[0].vm.qga == "/tmp/vm1.sock");
  CHECK(cfg->vms[1].host == "127.0.0.1");
  CHECK(cfg->vms[1].vm.gdbstub_host == "127.0.0.1");
  CHECK(cfg->vms[1].vm.qmp == "/tmp/vm2-qmp.sock");
}

TEST_CASE("lab config: errors name the field") {
  CHECK(error_of("{") == "the configuration is not valid JSON");
  CHECK(error_of("[]").find("JSON object") != std::string::npos);
  CHECK(error_of("{}") == "vms: missing (or \"libvirt\": a libvirt's running domains)");
  CHECK(error_of(R"({"vms": []})") == "vms: must be a non-empty array");
  CHECK(error_of(R"({"vms": [], "extra": 1})") == "extra: unknown field (known: allow, clients, control, control_group, files, libvirt, state_dir, vms)");
  CHECK(error_of(R"({"vms": [5]})") == "vms[0]: must be an object");
  CHECK(error_of(R"({"vms": [{"listen": ":1", "gdbstub": ":2"}]})") == "vms[0].name: missing");
  CHECK(error_of(R"({"vms": [{"name": "a", "gdbstub": ":2"}]})") ==
        "vms[0].listen: missing (give \"listen\" for GDB, \"kd\" for WinDbg, or both)");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1"}]})") == "vms[0].gdbstub: missing");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":x"}]})") == "vms[0].gdbstub: bad port 'x'");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": "nohost", "gdbstub": ":2"}]})") ==
        "vms[0].listen: needs HOST:PORT, got 'nohost'");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":0"}]})") == "vms[0].gdbstub: bad port '0'");
  CHECK(error_of(R"({"vms": [{"name": 3, "listen": ":1", "gdbstub": ":2"}]})") == "vms[0].name: must be a string");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":2", "qga": ""}]})") == "vms[0].qga: is empty");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":2", "qgaa": "/x"}]})").find("vms[0].qgaa: unknown field") == 0);
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":2"},
                             {"name": "a", "listen": ":3", "gdbstub": ":4"}]})") == "vms[1].name: 'a' is used twice");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":2"},
                             {"name": "b", "listen": "127.0.0.1:1", "gdbstub": ":4"}]})") ==
        "vms[1].listen: '127.0.0.1:1' is used by another VM or front end");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "kd": ":1", "gdbstub": ":2"}]})") ==
        "vms[0].kd: ':1' is used by another VM or front end");
  CHECK(error_of(R"({"vms": [{"name": "a", "kd": "x", "gdbstub": ":2"}]})") == "vms[0].kd: needs HOST:PORT, got 'x'");
  CHECK(error_of(R"({"vms": [{"name": "a", "kd": 5, "gdbstub": ":2"}]})") == "vms[0].kd: must be a string");
  CHECK(error_of(R"({"allow": {"run": ["/bin/true"]}})").find("vms: missing (\"allow\" and \"files\"") == 0);
  CHECK(load_lab_config("/nonexistent/lab.json").error().message == "cannot read the configuration /nonexistent/lab.json");
}

TEST_CASE("lab config: a VM for GDB and WinDbg (KD) at once, or for one of them") {
  auto cfg = parse_lab_config(R"({"vms": [
      {"name": "vm1", "listen": "127.0.0.1:2345", "kd": "127.0.0.1:50000", "gdbstub": "127.0.0.1:1234"},
      {"name": "vm2", "kd": ":50001", "gdbstub": "127.0.0.1:1235"},
      {"name": "vm3", "listen": ":2346", "gdbstub": "127.0.0.1:1236"}]})");
  REQUIRE(cfg);
  REQUIRE(cfg->vms.size() == 3);
  CHECK(cfg->vms[0].gdb);
  CHECK(cfg->vms[0].port == 2345);
  CHECK(cfg->vms[0].kd);
  CHECK(cfg->vms[0].kd_host == "127.0.0.1");
  CHECK(cfg->vms[0].kd_port == 50000);
  CHECK_FALSE(cfg->vms[1].gdb);
  CHECK(cfg->vms[1].kd);
  CHECK(cfg->vms[1].kd_port == 50001);
  CHECK(cfg->vms[2].gdb);
  CHECK_FALSE(cfg->vms[2].kd);
}

TEST_CASE("--config takes no port or program") {
  CHECK(parse_options({"--config", "lab.json"}));
  CHECK(parse_options({"--config=lab.json"})->config == "lab.json");
  CHECK_FALSE(parse_options({"--config", "lab.json", ":1234"}));
  CHECK_FALSE(parse_options({"--config"}));
  CHECK_FALSE(parse_options({"--config", "lab.json", "--local-kernel"}));
}

TEST_CASE("lab config: state_dir, an absolute folder, for a lab only") {
  auto cfg = parse_lab_config(R"({"state_dir": "/run/dbgstub-state",
      "vms": [{"name": "vm1", "listen": "127.0.0.1:2345", "gdbstub": "127.0.0.1:1234"}]})");
  REQUIRE(cfg);
  CHECK(cfg->state_dir == "/run/dbgstub-state");
  CHECK(parse_lab_config(R"({"vms": [{"name": "vm1", "listen": "127.0.0.1:2345", "gdbstub": "127.0.0.1:1234"}]})")
            ->state_dir.empty());
  CHECK(error_of(R"({"state_dir": "relative", "vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"}]})") ==
        "state_dir: must be an absolute path (a string)");
  CHECK(error_of(R"({"state_dir": 5, "vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"}]})") ==
        "state_dir: must be an absolute path (a string)");
  auto policy = parse_config(R"({"state_dir": "/x", "files": {"root": "/tmp"}})");
  REQUIRE_FALSE(policy);
  CHECK(policy.error().message.find("state_dir") != std::string::npos);
}

TEST_CASE("lab config: control, a socket path, and control_group") {
  const std::string vms = R"("vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"}])";
  auto cfg = parse_lab_config("{\"control\": \"/run/dbgstub/lab.sock\", \"control_group\": \"lab\", " + vms + "}");
  REQUIRE(cfg);
  CHECK(cfg->control == "/run/dbgstub/lab.sock");
  CHECK(cfg->control_group == "lab");
  CHECK(parse_lab_config("{" + vms + "}")->control.empty());
  CHECK(error_of("{\"control\": \"lab.sock\", " + vms + "}") ==
        "control: must be an absolute path (a string): where the control socket goes");
  CHECK(error_of("{\"control\": 1, " + vms + "}") ==
        "control: must be an absolute path (a string): where the control socket goes");
  CHECK(error_of("{\"control_group\": \"lab\", " + vms + "}") ==
        "control_group: applies to a \"control\" socket: give one");
  CHECK(error_of("{\"control\": \"/x.sock\", \"control_group\": 5, " + vms + "}") ==
        "control_group: must be a group name (a non-empty string)");
  auto policy = parse_config(R"({"control": "/x.sock", "files": {"root": "/tmp"}})");
  REQUIRE(!policy);
  CHECK(policy.error().message == "control: applies to a lab of VMs (\"vms\")");
}

TEST_CASE("lab config: a VM's fingerprint changes with its entry and what the lab gives it") {
  auto a = parse_lab_config(R"({"vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"},
                                        {"name": "w", "listen": ":3", "gdbstub": ":4"}]})");
  auto b = parse_lab_config(R"({"vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"},
                                        {"name": "w", "listen": ":3", "gdbstub": ":5"}]})");
  auto c = parse_lab_config(R"({"clients": ["::1"], "vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"}]})");
  REQUIRE((a && b && c));
  CHECK(a->vms[0].fingerprint == b->vms[0].fingerprint);
  CHECK(a->vms[1].fingerprint != b->vms[1].fingerprint);
  CHECK(a->vms[0].fingerprint != c->vms[0].fingerprint);
}

TEST_CASE("lab config: a libvirt source, alone or beside vms") {
  auto a = parse_lab_config(R"({"libvirt": {"ports": "2400-2409"}})");
  REQUIRE(a);
  REQUIRE(a->libvirt);
  CHECK(a->vms.empty());
  CHECK(a->libvirt->uri == "qemu:///system");
  CHECK(a->libvirt->host == "127.0.0.1");
  CHECK(a->libvirt->first == 2400);
  CHECK(a->libvirt->last == 2409);
  CHECK(!a->libvirt->kd);
  auto b = parse_lab_config(R"({"vms": [{"name": "v", "listen": ":1", "gdbstub": ":2"}],
      "libvirt": {"uri": "qemu+ssh://h/system", "ports": "2400-2409", "kd_ports": "50000-50001"}})");
  REQUIRE(b);
  CHECK(b->vms.size() == 1);
  CHECK(b->libvirt->uri == "qemu+ssh://h/system");
  CHECK(b->libvirt->kd);
  CHECK(b->libvirt->kd_first == 50000);
  CHECK(b->libvirt->kd_last == 50001);
  CHECK(error_of(R"({"libvirt": {"ports": "2400-2409", "port": 1}})") ==
        "libvirt.port: unknown field (known: host, kd_ports, ports, uri)");
  CHECK(error_of(R"({"libvirt": {}})") == "libvirt.ports: missing (\"FIRST-LAST\": the domains' GDB ports)");
  CHECK(error_of(R"({"libvirt": 5})") == "libvirt: must be an object with \"ports\" (and \"uri\", \"kd_ports\")");
  CHECK(error_of(R"({"libvirt": {"ports": "2409-2400"}})") ==
        "libvirt.ports: '2409-2400' is not a range of ports FIRST-LAST (1-65535, FIRST <= LAST)");
  CHECK(error_of(R"({"libvirt": {"ports": 5}})") == "libvirt.ports: must be a string \"FIRST-LAST\" (\"2400-2499\")");
  CHECK(error_of(R"({"libvirt": {"ports": "2400-2409", "kd_ports": "2405-2410"}})") ==
        "libvirt.kd_ports: overlaps libvirt.ports");
  CHECK(error_of(R"({"vms": [{"name": "v", "listen": ":2401", "gdbstub": ":2"}], "libvirt": {"ports": "2400-2409"}})") ==
        "libvirt: its port ranges hold port 2401 of vms[0] (v)");
  CHECK(error_of(R"({"libvirt": {"ports": "2400-2409"}, "allow": {}})") ==
        "allow: applies to a user-mode session, not to a lab of VMs (\"vms\")");
}

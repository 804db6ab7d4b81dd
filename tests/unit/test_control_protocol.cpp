// The lab's control socket protocol: requests parsed, bad input refused
// with a reason (never a crash), replies one line each and read back.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "server/lab/control_protocol.h"

using namespace dbgstub;
using namespace dbgstub::control;

namespace {
std::string error_of(std::string_view line) {
  auto r = parse_request(line);
  return r ? std::string("(no error)") : r.error().message;
}
}  // namespace

TEST_CASE("control protocol: requests") {
  auto s = parse_request(R"({"op": "status"})");
  REQUIRE(s);
  CHECK(s->op == Op::Status);
  auto k = parse_request(R"({"op": "kill", "vm": "vm1", "pid": 85})");
  REQUIRE(k);
  CHECK(k->op == Op::Kill);
  CHECK(k->vm == "vm1");
  CHECK(k->pid == 85);
  // A pid as a string of digits, as a shell script has it.
  auto k2 = parse_request(R"({"op": "kill", "vm": "vm1", "pid": "85"})");
  REQUIRE(k2);
  CHECK(k2->pid == 85);
  auto r = parse_request("{\"op\":\"reload\"}\r");
  REQUIRE(r);
  CHECK(r->op == Op::Reload);
  // Fields a newer client adds are ignored.
  CHECK(parse_request(R"({"op": "status", "id": 7})"));
}

TEST_CASE("control protocol: a request round-trips") {
  Request k{Op::Kill, "vm \"2\"", 4242};
  auto back = parse_request(format_request(k));
  REQUIRE(back);
  CHECK(back->vm == "vm \"2\"");
  CHECK(back->pid == 4242);
  CHECK(format_request(Request{Op::Status, "", 0}) == R"({"op":"status"})");
}

TEST_CASE("control protocol: bad requests are errors, not crashes") {
  CHECK(error_of("") == "the request is not valid JSON");
  CHECK(error_of("{") == "the request is not valid JSON");
  CHECK(error_of("status") == "the request is not valid JSON");
  CHECK(error_of("\xff\xfe{}") == "the request is not valid JSON");
  CHECK(error_of("[]") == "the request must be a JSON object with \"op\"");
  CHECK(error_of("42") == "the request must be a JSON object with \"op\"");
  CHECK(error_of("{}") == "\"op\" missing or not a string (known: kill, reload, status)");
  CHECK(error_of(R"({"op": 1})") == "\"op\" missing or not a string (known: kill, reload, status)");
  CHECK(error_of(R"({"op": "reboot"})") == "unknown op 'reboot' (known: kill, reload, status)");
  CHECK(error_of(R"({"op": "kill", "pid": 5})") == "kill: \"vm\" missing or not a non-empty string");
  CHECK(error_of(R"({"op": "kill", "vm": "", "pid": 5})") == "kill: \"vm\" missing or not a non-empty string");
  CHECK(error_of(R"({"op": "kill", "vm": "a"})") == "kill: \"pid\" missing or not a positive integer");
  CHECK(error_of(R"({"op": "kill", "vm": "a", "pid": 1.5})") == "kill: \"pid\" missing or not a positive integer");
  CHECK(error_of(R"({"op": "kill", "vm": "a", "pid": "-3"})") == "kill: \"pid\" missing or not a positive integer");
  CHECK(error_of(R"({"op": "kill", "vm": "a", "pid": "99999999999"})") ==
        "kill: \"pid\" missing or not a positive integer");
  CHECK(error_of(R"({"op": "kill", "vm": "a", "pid": 0})") == "kill: \"pid\" must be a positive integer");
  CHECK(error_of(R"({"op": "kill", "vm": "a", "pid": 4294967297})") == "kill: \"pid\" must be a positive integer");
  CHECK(error_of(std::string(kMaxLine + 1, ' ')).find("too long") != std::string::npos);
  // Deep nesting and odd bytes are no trouble either.
  CHECK(!parse_request(std::string(5000, '[') + std::string(5000, ']')));
  CHECK(!parse_request(std::string("{\"op\":\"st\0atus\"}", 16)));
}

TEST_CASE("control protocol: replies are one line of JSON") {
  VmStatus a;
  a.name = "vm1";
  a.gdb_port = 2345;
  a.state = VmState::Halted;
  a.debugger = "127.0.0.1:40412";
  a.pending.push_back({85, "sleep", 0xffff8880041b8000ull});
  VmStatus b;
  b.name = "vm2";
  b.kd_port = 50000;
  b.state = VmState::Unreachable;
  std::string line = format_status({a, b});
  CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  CHECK(j["ok"] == true);
  REQUIRE(j["vms"].size() == 2);
  CHECK(j["vms"][0]["name"] == "vm1");
  CHECK(j["vms"][0]["source"] == "file");
  CHECK(j["vms"][0]["gdb_port"] == 2345);
  CHECK(j["vms"][0]["kd_port"].is_null());
  CHECK(j["vms"][0]["state"] == "halted");
  CHECK(j["vms"][0]["debugger"] == "127.0.0.1:40412");
  CHECK(j["vms"][0]["pending_terminations"][0]["pid"] == 85);
  CHECK(j["vms"][0]["pending_terminations"][0]["name"] == "sleep");
  CHECK(j["vms"][0]["pending_terminations"][0]["address"] == "0xffff8880041b8000");
  CHECK(j["vms"][1]["gdb_port"].is_null());
  CHECK(j["vms"][1]["kd_port"] == 50000);
  CHECK(j["vms"][1]["state"] == "unreachable");
  CHECK(j["vms"][1]["debugger"].is_null());

  // And back, as `dbgstub ctl` reads it.
  auto r = parse_reply(line);
  REQUIRE(r);
  CHECK(r->ok);
  REQUIRE(r->vms.size() == 2);
  CHECK(r->vms[0].gdb_port == std::optional<uint16_t>(2345));
  CHECK(r->vms[0].state == VmState::Halted);
  CHECK(r->vms[0].pending[0].address == 0xffff8880041b8000ull);
  CHECK(r->vms[1].state == VmState::Unreachable);
  CHECK(!r->vms[1].debugger);

  std::string table = status_table(r->vms);
  CHECK(table.find("VM ") == 0);
  CHECK(table.find("vm1  ") != std::string::npos);
  CHECK(table.find("sleep (pid 85, 0xffff8880041b8000)") != std::string::npos);
  CHECK(table.find("unreachable") != std::string::npos);
}

TEST_CASE("control protocol: kill, reload and error replies") {
  auto k = parse_reply(format_kill(KillOutcome::Scheduled, "Process ... will be terminated\nthe next time"));
  REQUIRE(k);
  CHECK(k->ok);
  CHECK(k->result == "scheduled");
  CHECK(k->message.find('\n') != std::string::npos);
  CHECK(format_kill(KillOutcome::Terminated, "x").find("\"result\":\"terminated\"") != std::string::npos);
  CHECK(format_kill(KillOutcome::Terminated, "a\nb").find('\n') == std::string::npos);

  auto e = parse_reply(format_error("no VM 'x' (known: vm1)"));
  REQUIRE(e);
  CHECK(!e->ok);
  CHECK(e->error == "no VM 'x' (known: vm1)");
  // Bytes that aren't UTF-8 (a guest's process name) don't throw.
  CHECK(format_error("\xff\xfe").find("\"ok\":false") != std::string::npos);

  auto rl = parse_reply(format_reload({{"vm1"}, {"vm3"}, {"vm2"}}));
  REQUIRE(rl);
  CHECK(rl->reload.kept == std::vector<std::string>{"vm1"});
  CHECK(rl->reload.started == std::vector<std::string>{"vm3"});
  CHECK(rl->reload.stopped == std::vector<std::string>{"vm2"});

  CHECK(!parse_reply("garbage"));
  CHECK(!parse_reply(R"({"vms": []})"));
  CHECK(!parse_reply(R"({"ok": true, "vms": [5]})"));
}

// The lab's control socket protocol ("control" in the lab file), shared by
// the server (server/lab/control_socket.h) and `dbgstub ctl`
// (server/app/ctl.h). Pure: text in, text out, no sockets, so every corner
// is unit-tested (tests/unit/test_control_protocol.cpp). Documented for
// scripts in docs/kernel-mode.md; keep it stable (add fields, never rename).
//
// One JSON object per line each way; every request gets exactly one reply
// line, in order:
//   {"op": "status"}
//   {"op": "kill", "vm": "vm1", "pid": 85}
//   {"op": "reload"}
// Replies carry "ok"; a failure is {"ok": false, "error": "why"}.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dbgstub::control {

// The longest request line taken: a client that sends more without a
// newline is answered with an error and dropped.
constexpr std::size_t kMaxLine = 64 * 1024;

enum class Op { Status, Kill, Reload };

struct Request {
  Op op = Op::Status;
  std::string vm;  // kill
  int pid = 0;     // kill
};

// Never throws, whatever the bytes: a bad line is an Error whose message
// goes into the error reply.
Result<Request> parse_request(std::string_view line);
std::string format_request(const Request& r);

// running: the VM runs (no debugger, or one that let it run); halted: a
// debugger holds it halted; unreachable: its gdbstub can't be reached;
// starting: dbgstub is still connecting to it; busy: its thread did not
// answer in time (a frozen gdbstub holds it for up to its deadline).
enum class VmState { Running, Halted, Unreachable, Starting, Busy };
const char* state_name(VmState s);

struct PendingKill {
  int pid = 0;
  std::string name;
  uint64_t address = 0;  // the task_struct; "0x..." on the wire (JSON numbers lose 64-bit values)
};

struct VmStatus {
  std::string name;
  std::string source = "file";           // where the entry came from (the lab file)
  std::optional<uint16_t> gdb_port;      // null: no GDB front end
  std::optional<uint16_t> kd_port;       // null: no KD front end
  VmState state = VmState::Busy;
  std::optional<std::string> debugger;   // "127.0.0.1:40412", null: none connected
  std::vector<PendingKill> pending;      // scheduled for the next resume
};

enum class KillOutcome { Terminated, Scheduled };

struct ReloadResult {
  std::vector<std::string> kept, started, stopped;
};

// Replies, each one line without its newline.
std::string format_error(std::string_view message);
std::string format_status(const std::vector<VmStatus>& vms);
std::string format_kill(KillOutcome outcome, std::string_view message);
std::string format_reload(const ReloadResult& r);

// The client's side. A reply line: ok, or the server's error message.
struct Reply {
  bool ok = false;
  std::string error;
  std::string result;   // kill: "terminated" / "scheduled"
  std::string message;  // kill: what happened, in words
  std::vector<VmStatus> vms;  // status
  ReloadResult reload;        // reload
};
Result<Reply> parse_reply(std::string_view line);
// `dbgstub ctl status` without --json.
std::string status_table(const std::vector<VmStatus>& vms);

}  // namespace dbgstub::control

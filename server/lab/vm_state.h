// What dbgstub must remember about a VM across its own death (kill -9, a
// crash, the OOM killer): QEMU's gdbstub keeps a VM halted once its client
// is gone, and the breakpoints it was given stay in, so a restarted dbgstub
// must know that it held the VM, what it planted, and which guest processes
// a debugger had scheduled for termination (server/termination_schedule.h).
//
// One JSON file per VM in the state folder (--state-dir, lab file
// "state_dir", default /var/lib/dbgstub), replaced atomically (a temporary
// file in the same folder, fsync, rename, fsync of the folder) at every
// change, so a crash leaves either the old state or the new one; with
// nothing left to undo the file is removed. A file
// that is damaged (bad JSON, wrong version) or foreign (another VM's name
// or gdbstub) is never trusted: it is logged and renamed aside
// (NAME.json.damaged-TIMESTAMP).
//
//   {"version": 1, "name": "vm1", "gdbstub": "127.0.0.1:1234", "held": true,
//    "breakpoints": [{"type": 0, "address": "0xffffffff81000000", "kind": 1}],
//    "terminations": [{"address": "0xffff888006449840", "pid": 99, "name": "sleep"}]}
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dbgstub {

struct PlantedBreakpoint {
  int type = 0;  // BreakpointType's value (Z0..Z4)
  uint64_t address = 0;
  uint64_t kind = 0;
  bool operator==(const PlantedBreakpoint&) const = default;
};

struct PendingTermination {
  uint64_t address = 0;  // the guest's task_struct
  int pid = 0;
  std::string name;
  std::optional<uint64_t> start_time;  // when the task started (ns since boot), where known
  bool operator==(const PendingTermination&) const = default;
};

struct VmState {
  // dbgstub is the gdbstub's client: the VM is halted, or runs only until
  // the next stop (a breakpoint), with nobody left to resume it if
  // dbgstub dies.
  bool held = false;
  std::vector<PlantedBreakpoint> breakpoints;
  std::vector<PendingTermination> terminations;
  bool needs_recovery() const { return held || !breakpoints.empty() || !terminations.empty(); }
  bool operator==(const VmState&) const = default;
};

// Which VM a file belongs to: a file naming another is foreign.
struct VmIdentity {
  std::string name;     // the lab's name, or "gdbstub-HOST-PORT" for --vm
  std::string gdbstub;  // "HOST:PORT"
};

constexpr int kVmStateVersion = 1;

std::string serialize_vm_state(const VmState& state, const VmIdentity& id);
// The error says why the text is not to be trusted (damaged or foreign).
Result<VmState> parse_vm_state(std::string_view text, const VmIdentity& expected);

// A file name for a VM's name: letters, digits, '.', '_' and '-' kept,
// anything else '_' (a name can't reach outside the folder).
std::string vm_state_file_name(const std::string& vm_name);

// The default state folder: the systemd unit's StateDirectory, which
// systemd passes as $STATE_DIRECTORY (the first, if it lists several);
// /var/lib/dbgstub without it.
constexpr const char* kDefaultStateDir = "/var/lib/dbgstub";
std::string default_state_dir();

// One VM's file. Not thread-safe: used from the event loop's thread.
class VmStateFile {
 public:
  VmStateFile(std::string dir, VmIdentity id);
  ~VmStateFile();
  VmStateFile(const VmStateFile&) = delete;
  VmStateFile& operator=(const VmStateFile&) = delete;

  // Takes the VM's lock in the folder (NAME.lock, flock), held until this
  // object goes: two dbgstubs serving one VM from one folder would each
  // undo the other's hold and lose each other's kills. An error: another
  // live dbgstub holds it. A folder that can't be written is logged and
  // not an error (the VM is served without the safety net, as save()).
  Status lock();

  const std::string& path() const { return path_; }
  const VmIdentity& identity() const { return id_; }

  // Reads what the last dbgstub left. No file: the empty state. A damaged
  // or foreign file is logged, renamed aside, and the empty state returned.
  // The state in memory becomes what was read.
  VmState load();
  const VmState& state() const { return state_; }

  // Each changes one part and writes the file if anything changed.
  // A failed write is logged (once per kind of failure), never fatal: the
  // VM is served without the safety net rather than not at all.
  void set_hold(bool held, std::vector<PlantedBreakpoint> breakpoints);
  void set_terminations(std::vector<PendingTermination> terminations);

  // Writes the state in memory (atomically, as described above); a state
  // with nothing to undo removes the file instead.
  Status save();

 private:
  std::string dir_;
  VmIdentity id_;
  std::string path_;
  VmState state_;
  std::string last_error_;
  int lock_fd_ = -1;
};

// Writes `text` to `path` atomically: a temporary file beside it, fsync,
// rename over `path`, fsync of the folder. Creates the folder (0700) if
// missing.
Status write_file_atomically(const std::string& path, const std::string& text);
// Removes `path` (none is fine) and syncs its folder.
Status remove_file_durably(const std::string& path);

}  // namespace dbgstub

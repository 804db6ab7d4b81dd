// User-mode security policy (issue #7, "safe by default"): which programs a
// remote debugger may start (vRun), which processes it may attach to
// (vAttach), and under which directory its host I/O (vFile) stays. Given in
// the JSON configuration (--config FILE with [HOST]:PORT; see README,
// Security):
//
//   {"allow": {"run": ["/usr/bin/true", "/srv/debug/bin/"],
//              "attach": {"users": ["alice", 1001], "pids": [4242]}},
//    "files": {"root": "/srv/debug", "write": false}}
//
// A list implies the permission: "allow.run" allows vRun as --allow-run
// does, restricted to the list; the same for "allow.attach".
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace dbgstub {

struct RunAllowList {
  // Resolved absolute paths (realpath at load). An entry that names a
  // directory allows every program beneath it (after resolving symlinks and
  // ".."); one that names a file allows that file only.
  std::vector<std::string> files;
  std::vector<std::string> dirs;
};

struct AttachAllowList {
  std::set<uid_t> uids;  // a process whose threads have only these uids (and no more than their owner has)
  std::set<int> pids;    // or one of these pids (whatever process has it at the time)
};

struct SecurityPolicy {
  std::optional<RunAllowList> run;
  std::optional<AttachAllowList> attach;
  std::string files_root;   // resolved; empty: vFile is not confined
  bool files_write = false; // "files": {"write": true}, as --allow-file-write
  bool empty() const { return !run && !attach && files_root.empty() && !files_write; }
};

// The program vRun is about to start, as the debugger named it: opened
// (O_PATH, close-on-exec) and checked by what the descriptor resolves to,
// so a symlink swapped after the check changes nothing. Refused unless it
// is absolute and, resolved, in the list. The caller owns the descriptor
// (LaunchSpec::exec_fd).
Result<int> open_allowed_program(const RunAllowList& allow, const std::string& program);
// The same check, the descriptor closed.
Status check_run(const RunAllowList& allow, const std::string& program);
// The process vAttach names: a pid in the list, or a process (not a
// thread of one) each of whose threads has only allowed uids and nothing
// beyond what its owner's own processes have (groups, capabilities), as
// read from /proc/PID/task/*/status.
Status check_attach(const AttachAllowList& allow, int pid);
// One thread's credentials, from a /proc status file.
struct TaskCredentials {
  int tgid = 0;
  std::vector<uid_t> uids;    // real, effective, saved, filesystem
  std::vector<gid_t> gids;    // the same, then the supplementary groups
  uint64_t capabilities = 0;  // permitted | effective | ambient
};
Result<TaskCredentials> task_credentials(const std::string& status_path);
// Reads a process's real, effective and saved uids.
Result<std::vector<uid_t>> process_uids(int pid);

}  // namespace dbgstub

// dbgstub's JSON configuration (--config FILE). Either a lab of VMs served
// by one dbgstub (no [HOST]:PORT on the command line): each VM with its own
// listening port(s), GDB's and/or WinDbg's (KD), all on the one event loop;
// or the security policy of a user-mode session (with [HOST]:PORT; see
// server/policy.h). Bad or missing configuration is an error that names the
// field ("vms[1].gdbstub: ...", "allow.run[0]: ...").
//
//   {"vms": [{"name": "vm1", "listen": "127.0.0.1:2345", "kd": "127.0.0.1:50000",
//             "gdbstub": "127.0.0.1:1234", "qga": "/run/lab/vm1-qga.sock"}]}
//
// "clients" (the lab's, or a VM's own, which replaces the lab's for that
// VM): the addresses and CIDR ranges debuggers may connect from, on GDB and
// KD ports alike (server/client_allow_list.h). Without it, anyone who can
// reach the port.
//
// "control" (a lab's): the path of a Unix socket for `dbgstub ctl` (status,
// kill, reload; server/lab/control_socket.h), mode 0600, or 0660 with
// "control_group" (a group name) as its group.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "server/app/options.h"
#include "server/client_allow_list.h"
#include "server/policy.h"

namespace dbgstub {

struct LabVm {
  std::string name;
  bool gdb = false;     // "listen": GDB's front end
  std::string host;     // where dbgstub listens for this VM's GDB debugger
  uint16_t port = 0;
  bool kd = false;      // "kd": WinDbg's front end, for the same VM
  std::string kd_host;
  uint16_t kd_port = 0;
  VmOptions vm;
  ClientAllowList clients;  // its own "clients", or else the lab's
  // The entry as written, with what the lab gives every VM ("clients",
  // "state_dir"): a reload keeps a VM whose fingerprint did not change.
  std::string fingerprint;
};

// A lab's "libvirt": every running domain of one libvirt, served (and
// those that start later), each on the next free port of "ports" (GDB) and,
// with "kd_ports", of that range (WinDbg):
//   "libvirt": {"uri": "qemu:///system", "ports": "2400-2499", "kd_ports": "50000-50099"}
struct LabLibvirt {
  std::string uri = "qemu:///system";
  std::string host = "127.0.0.1";  // where the domains' debuggers connect
  uint16_t first = 0, last = 0;
  bool kd = false;
  uint16_t kd_first = 0, kd_last = 0;
};

struct LabConfig {
  std::vector<LabVm> vms;    // a lab ("vms")
  std::optional<LabLibvirt> libvirt;  // a lab's "libvirt" source, with or without "vms"
  ClientAllowList clients;   // the lab's "clients" (each VM's copy is in LabVm)
  SecurityPolicy policy;     // a user-mode session ("allow", "files")
  std::string state_dir;     // a lab's "state_dir" (server/lab/vm_state.h); empty: not given
  std::string control;       // a lab's "control" socket path; empty: none
  std::string control_group; // "control_group"; empty: only dbgstub's user
};

// Either kind; "vms" and the policy's fields don't go together.
Result<LabConfig> parse_config(std::string_view json_text);
Result<LabConfig> load_config(const std::string& path);
// A lab: "vms" is required.
Result<LabConfig> parse_lab_config(std::string_view json_text);
Result<LabConfig> load_lab_config(const std::string& path);
// A user-mode session's policy: "vms" is refused.
Result<LabConfig> load_policy_config(const std::string& path);

}  // namespace dbgstub

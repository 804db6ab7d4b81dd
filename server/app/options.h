// Command line, compatible with gdbserver where the two overlap:
//   dbgstub [OPTIONS] [HOST]:PORT PROG [ARGS...]
//   dbgstub [OPTIONS] --attach [HOST]:PORT PID
//   dbgstub [OPTIONS] --multi [HOST]:PORT
//   dbgstub [OPTIONS] --vm gdbstub=HOST:PORT[,qga=PATH][,qmp=PATH] [HOST]:PORT
//   dbgstub --kd [HOST]:PORT (--local-kernel | --vm ...) [OPTIONS]   WinDbg's KD
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "server/client_allow_list.h"
#include "server/policy.h"

namespace dbgstub {

// A QEMU VM to debug in kernel mode (--vm). Only the gdbstub is used so
// far; the guest agent and QMP sockets are kept for what comes next.
struct VmOptions {
  std::string gdbstub_host;   // QEMU's -gdb tcp:HOST:PORT
  uint16_t gdbstub_port = 0;
  std::string qga;            // guest agent socket path (optional)
  std::string qmp;            // QMP socket path (optional)
  // libvirt=DOMAIN[,uri=URI]: a libvirt domain, whose gdbstub dbgstub opens
  // on a free loopback port (gdbstub_host:gdbstub_port, chosen at start)
  // through libvirt and closes when it is done (server/lab/libvirt_source.h).
  std::string libvirt_domain;
  std::string libvirt_uri;    // default qemu:///system
};

// Parses the value of --vm ("gdbstub=HOST:PORT,qga=PATH,qmp=PATH", or
// "libvirt=DOMAIN[,uri=URI]"); errors
// name the field that is wrong or missing.
Result<VmOptions> parse_vm_spec(const std::string& spec);
// "HOST:PORT" ("[::1]:PORT", "localhost" and an empty host are 127.0.0.1;
// port 0 lets the system choose, where that makes sense).
Status parse_host_port(const std::string& value, std::string& host, uint16_t& port);

struct Options {
  std::string host = "127.0.0.1";  // never all interfaces unless asked
  uint16_t port = 0;
  std::vector<std::string> program;   // PROG ARGS...
  std::optional<int> attach_pid;
  bool multi = false;
  bool stdio = false;          // COMM "-" or "stdio": talk over stdin/stdout
  bool local_kernel = false;   // serve this machine's kernel, read-only
  std::optional<VmOptions> vm; // serve a QEMU VM's kernel through its gdbstub
  bool kd = false;             // speak WinDbg's KD protocol (kdcom over TCP) instead of GDB's
  std::string config;          // --config FILE: a lab of VMs, or with [HOST]:PORT a user-mode session's policy
  bool lab = false;            // --config without [HOST]:PORT: the file is a lab of VMs
  SecurityPolicy policy;       // from --config (user mode), loaded by main
  ClientAllowList clients;     // who may connect (a lab's "clients"); empty: anyone who reaches the port
  bool once = false;
  bool allow_run = false;      // accept vRun from the network
  bool allow_attach = false;   // accept vAttach from the network
  bool allow_file_write = false;  // let vFile create, write and delete files here
  bool disable_randomization = true;
  bool debug_children = false;
  std::set<std::string> disabled_packets;  // --disable-packet=T,qC,... (testing, as gdbserver)
  std::vector<std::string> wrapper;        // --wrapper ... --: launch prefix  // -o: follow child processes (WinDbg's -o)
  std::string log_level = "info";
  bool log_packets = false;
  std::string log_file;  // empty: stderr
  std::string state_dir;  // --state-dir DIR: kernel mode's state files (server/lab/vm_state.h); empty: not given
  int handshake_timeout = 30;  // seconds a new client may stay silent (0 = forever)
  int spin_us = 0;             // poll this long after an event before blocking (see event_loop.h)
  bool help = false;
  bool version = false;
  bool selftest = false;       // --selftest: check this machine and exit (server/self_test.h)
};

Result<Options> parse_options(const std::vector<std::string>& args);

// The command line's PROG as an absolute name, fixed at startup: a relative
// name must not come to mean another file once the debugger has set the
// working directory (QSetWorkingDir) or the environment's PATH for the
// program. Relative to `cwd`; a bare name that is not a program in `cwd`
// is looked up in `path_list` (PATH), and taken from `cwd` if not found
// there either (the start then fails).
std::string absolute_program(const std::string& name, const std::string& cwd, const std::string& path_list);
std::string usage();

}  // namespace dbgstub

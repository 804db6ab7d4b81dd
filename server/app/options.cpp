#include "server/app/options.h"

#include <charconv>
#include <limits>
#include <optional>
#include <string_view>

#include "common/program_search.h"

namespace dbgstub {
namespace {

// `v` as a whole decimal number from `lo` to `hi`, or nothing.
std::optional<int> whole_number(std::string_view v, int lo, int hi) {
  int n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < lo || n > hi) return std::nullopt;
  return n;
}

// "[HOST]:PORT", "HOST:PORT", "PORT" is not accepted (gdbserver's COMM is
// host:port or a device; dbgstub only speaks TCP).
Status parse_comm(const std::string& comm, Options& o) {
  if (comm == "stdio" || comm == "-") {
    o.stdio = true;  // gdb's "target remote | dbgstub - PROG"
    return ok_status();
  }
  auto colon = comm.rfind(':');
  if (colon == std::string::npos) return make_error(22, "expected [HOST]:PORT, got '" + comm + "'");
  std::string host = comm.substr(0, colon);
  std::string port = comm.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto value = whole_number(port, 0, 65535);
  if (!value) return make_error(22, "bad port '" + port + "'");
  if (host == "localhost") host = "127.0.0.1";
  if (!host.empty()) o.host = host;
  o.port = static_cast<uint16_t>(*value);
  return ok_status();
}

// "HOST:PORT" or "[V6ADDR]:PORT" for a field of --vm; HOST may be empty
// (loopback).
Status parse_endpoint(const std::string& field, const std::string& value, std::string& host, uint16_t& port) {
  if (auto st = parse_host_port(value, host, port); !st) return make_error(22, "--vm: " + field + "=: " + st.error().message);
  if (port == 0) return make_error(22, "--vm: " + field + "=: bad port '0'");
  return ok_status();
}

}  // namespace

Status parse_host_port(const std::string& value, std::string& host, uint16_t& port) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos) return make_error(22, "needs HOST:PORT, got '" + value + "'");
  host = value.substr(0, colon);
  std::string p = value.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  auto v = whole_number(p, 0, 65535);
  if (!v) return make_error(22, "bad port '" + p + "'");
  port = static_cast<uint16_t>(*v);
  return ok_status();
}

Result<VmOptions> parse_vm_spec(const std::string& spec) {
  VmOptions vm;
  bool have_gdbstub = false, have_qga = false, have_qmp = false, have_libvirt = false, have_uri = false;
  if (spec.empty()) return make_error(22, "--vm needs gdbstub=HOST:PORT or libvirt=DOMAIN");
  for (std::size_t b = 0; b <= spec.size();) {
    std::size_t e = spec.find(',', b);
    if (e == std::string::npos) e = spec.size();
    std::string item = spec.substr(b, e - b);
    b = e + 1;
    auto eq = item.find('=');
    if (eq == std::string::npos)
      return make_error(22, "--vm: field '" + item +
                                "' needs a value (gdbstub=HOST:PORT, qga=PATH, qmp=PATH, libvirt=DOMAIN, uri=URI)");
    std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    bool* seen = name == "gdbstub" ? &have_gdbstub
                 : name == "qga"   ? &have_qga
                 : name == "qmp"   ? &have_qmp
                 : name == "libvirt" ? &have_libvirt
                 : name == "uri"     ? &have_uri
                                     : nullptr;
    if (!seen) return make_error(22, "--vm: unknown field '" + name + "' (known: gdbstub, qga, qmp, libvirt, uri)");
    if (*seen) return make_error(22, "--vm: field '" + name + "' given twice");
    *seen = true;
    if (value.empty()) return make_error(22, "--vm: field '" + name + "' has an empty value");
    if (name == "gdbstub") {
      if (auto st = parse_endpoint(name, value, vm.gdbstub_host, vm.gdbstub_port); !st) return st.error();
    } else if (name == "libvirt") {
      vm.libvirt_domain = value;
    } else if (name == "uri") {
      vm.libvirt_uri = value;
    } else {
      (name == "qga" ? vm.qga : vm.qmp) = value;
    }
  }
  if (have_libvirt) {
    if (have_gdbstub || have_qga || have_qmp)
      return make_error(22, "--vm: libvirt=DOMAIN goes alone (with uri=URI): dbgstub opens the domain's gdbstub "
                            "itself, and its agent goes through libvirt");
    if (!have_uri) vm.libvirt_uri = "qemu:///system";
    vm.gdbstub_host = "127.0.0.1";  // the port is chosen when dbgstub starts
    return vm;
  }
  if (have_uri) return make_error(22, "--vm: uri= goes with libvirt=DOMAIN");
  if (!have_gdbstub) return make_error(22, "--vm: missing field gdbstub=HOST:PORT (or libvirt=DOMAIN)");
  return vm;
}

std::string usage() {
  return "Usage:\n"
         "  dbgstub [OPTIONS] [HOST]:PORT PROG [ARGS...]   run PROG under the debugger\n"
         "  dbgstub [OPTIONS] --attach [HOST]:PORT PID      attach to a running process\n"
         "  dbgstub [OPTIONS] --multi [HOST]:PORT           extended-remote: wait for run/attach\n"
         "  dbgstub [OPTIONS] --local-kernel [HOST]:PORT    inspect this machine's kernel (read-only)\n"
         "  dbgstub [OPTIONS] --vm gdbstub=HOST:PORT[,qga=PATH][,qmp=PATH] [HOST]:PORT\n"
         "                                                  debug a QEMU VM's kernel through its gdbstub\n"
         "  dbgstub [OPTIONS] --vm libvirt=DOMAIN[,uri=URI] [HOST]:PORT\n"
         "                                                  the same for a libvirt domain (default URI\n"
         "                                                  qemu:///system): its gdbstub is opened on a free\n"
         "                                                  loopback port through libvirt, closed at exit\n"
         "  dbgstub --kd [HOST]:PORT (--local-kernel | --vm SPEC) [OPTIONS]\n"
         "                                                  serve WinDbg (KD over a TCP serial stream):\n"
         "                                                  windbg -k com:ipport=PORT,port=HOST\n"
         "  dbgstub [OPTIONS] --config LAB.json             serve the VMs a lab file names, each on its port(s)\n"
         "  dbgstub [OPTIONS] --config POLICY.json [HOST]:PORT ...   a user-mode session with the file's\n"
         "                                                  allow-lists (vRun, vAttach) and vFile root\n"
         "  dbgstub ctl --socket PATH status [--json] | kill VM PID | reload\n"
         "                                                  control a running lab through its \"control\" socket\n"
         "\n"
         "Options:\n"
         "  --multi             keep serving when no process is left (extended-remote)\n"
         "  --once              exit after the first debugger disconnects\n"
         "  --allow-run         let a remote debugger start programs (vRun)\n"
         "  --allow-attach      let a remote debugger attach to processes (vAttach)\n"
         "  --allow-file-write  let a remote debugger write and delete files here (remote put/delete)\n"
         "  -o, --debug-children  debug child processes too (WinDbg's -o; .childdbg 1)\n"
         "  --no-disable-randomization   keep ASLR on for programs started here\n"
         "  --disable-randomization      turn it off (the default)\n"
         "  --log-level LEVEL   trace, debug, info, warn, error, off (default info)\n"
         "  --log-packets       log every packet in both directions; also --remote-debug\n"
         "  --log-file=FILE     write the log to FILE (appended) instead of stderr; also --debug-file=FILE\n"
         "  --state-dir DIR     kernel mode: keep each VM's state here, so a restart after a crash resumes\n"
         "                      the VMs dbgstub held and carries out pending .kill's (default /var/lib/dbgstub)\n"
         "  --handshake-timeout=SECONDS  drop a client that sends nothing this long after connecting (30; 0 = never)\n"
         "  --spin=USEC         after each event, poll this long for the next before sleeping (0 = never, the default)\n"
         "  --wrapper WRAPPER... --   start programs through WRAPPER (e.g. env X=1)\n"
         "  --disable-packet=LIST     act as if these were unsupported: vCont,T,Tthread,qC,qfThreadInfo,threads\n"
         "  --selftest          check that this machine lets dbgstub work (codecs, ptrace) and exit\n"
         "  --socket PATH       ctl: the lab's control socket (its \"control\" field)\n"
         "  --json              ctl status: print the server's JSON reply as it came\n"
         "  --help, --version\n"
         "HOST defaults to 127.0.0.1; give 0.0.0.0 to listen on all interfaces.\n"
         "COMM may also be - (or stdio): speak over stdin/stdout, for gdb's \"target remote | dbgstub - PROG\".\n";
}

Result<Options> parse_options(const std::vector<std::string>& args) {
  Options o;
  std::size_t i = 0;
  bool attach = false;
  std::optional<std::string> kd_comm;  // --kd [HOST]:PORT
  // Options come first; everything after COMM belongs to the program
  // (with --kd, COMM is its value and options may follow it).
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-o") {
      o.debug_children = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) break;
    if (a == "--multi") o.multi = true;
    else if (a == "--once") o.once = true;
    else if (a == "--attach") attach = true;
    else if (a == "--allow-run") o.allow_run = true;
    else if (a == "--local-kernel") o.local_kernel = true;
    else if (a == "--kd" || a.rfind("--kd=", 0) == 0) {
      o.kd = true;
      if (a != "--kd") kd_comm = a.substr(5);
      else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) kd_comm = args[++i];
    }
    else if (a == "--debug-children") o.debug_children = true;
    else if (a == "--allow-attach") o.allow_attach = true;
    else if (a == "--allow-file-write") o.allow_file_write = true;
    else if (a == "--no-disable-randomization") o.disable_randomization = false;
    else if (a == "--disable-randomization") o.disable_randomization = true;
    else if (a == "--log-packets" || a == "--remote-debug") o.log_packets = true;
    else if (a == "--help") o.help = true;
    else if (a.rfind("--disable-packet=", 0) == 0) {
      // gdbserver's testing switch: pretend not to support these packets.
      std::string list = a.substr(17);
      for (std::size_t b = 0; b <= list.size();) {
        std::size_t e = list.find(',', b);
        if (e == std::string::npos) e = list.size();
        std::string name = list.substr(b, e - b);
        if (name != "vCont" && name != "T" && name != "Tthread" && name != "qC" && name != "qfThreadInfo" &&
            name != "threads")
          return make_error(22, "--disable-packet: unknown packet '" + name + "'");
        o.disabled_packets.insert(name);
        b = e + 1;
      }
    } else if (a == "--wrapper") {
      // gdbserver's --wrapper WRAPPER... --: run programs through WRAPPER.
      for (++i; i < args.size() && args[i] != "--"; ++i) o.wrapper.push_back(args[i]);
      if (i >= args.size()) return make_error(22, "--wrapper needs its arguments ended by --");
      if (o.wrapper.empty()) return make_error(22, "--wrapper needs a program");
    }
    else if (a == "--version") o.version = true;
    else if (a == "--selftest") o.selftest = true;
    else if (a == "--config" || a.rfind("--config=", 0) == 0) {
      if (a == "--config") {
        if (++i >= args.size()) return make_error(22, "--config needs a file");
        o.config = args[i];
      } else {
        o.config = a.substr(9);
      }
      if (o.config.empty()) return make_error(22, "--config needs a file");
    }
    else if (a == "--vm" || a.rfind("--vm=", 0) == 0) {
      std::string spec;
      if (a == "--vm") {
        if (++i >= args.size()) return make_error(22, "--vm needs gdbstub=HOST:PORT");
        spec = args[i];
      } else {
        spec = a.substr(5);
      }
      auto vm = parse_vm_spec(spec);
      if (!vm) return vm.error();
      o.vm = *vm;
    }
    else if (a == "--log-level" || a.rfind("--log-level=", 0) == 0) {
      if (a == "--log-level") {
        if (++i >= args.size()) return make_error(22, "--log-level needs a value");
        o.log_level = args[i];
      } else {
        o.log_level = a.substr(12);
      }
    } else if (a == "--state-dir" || a.rfind("--state-dir=", 0) == 0) {
      if (a == "--state-dir") {
        if (++i >= args.size()) return make_error(22, "--state-dir needs a folder");
        o.state_dir = args[i];
      } else {
        o.state_dir = a.substr(12);
      }
      if (o.state_dir.empty()) return make_error(22, "--state-dir needs a folder");
    } else if (a.rfind("--log-file=", 0) == 0 || a.rfind("--debug-file=", 0) == 0) {
      // --debug-file is gdbserver's name for it.
      o.log_file = a.substr(a.find('=') + 1);
      if (o.log_file.empty()) return make_error(22, a.substr(0, a.find('=')) + " needs a file");
    } else if (a.rfind("--handshake-timeout=", 0) == 0) {
      std::string v = a.substr(20);
      auto secs = whole_number(v, 0, std::numeric_limits<int>::max());
      if (!secs) return make_error(22, "--handshake-timeout needs whole seconds, got '" + v + "'");
      o.handshake_timeout = *secs;
    } else if (a.rfind("--spin=", 0) == 0) {
      std::string v = a.substr(7);
      auto us = whole_number(v, 0, 100000);
      if (!us) return make_error(22, "--spin needs microseconds from 0 to 100000, got '" + v + "'");
      o.spin_us = *us;
    } else if (a == "--") {
      ++i;
      break;
    } else {
      return make_error(22, "unknown option " + a);
    }
  }
  if (o.help || o.version || o.selftest) return o;
  if (o.kd) {
    // WinDbg's KD front end serves a kernel: a local one or a VM's.
    if (!kd_comm) {
      if (i >= args.size()) return make_error(22, "--kd needs [HOST]:PORT");
      kd_comm = args[i++];
    }
    if (*kd_comm == "-" || *kd_comm == "stdio") return make_error(22, "--kd speaks over TCP only: give [HOST]:PORT");
    if (auto st = parse_comm(*kd_comm, o); !st) return st.error();
    if (attach || i < args.size())
      return make_error(22, "--kd serves a kernel (--local-kernel or --vm): a user-mode program or process is "
                            "not supported over KD; use the GDB front end for it");
    if (o.local_kernel && o.vm) return make_error(22, "--local-kernel and --vm are different sessions: give one");
    if (!o.local_kernel && !o.vm)
      return make_error(22, "--kd needs a kernel target: --local-kernel or --vm gdbstub=HOST:PORT (a user-mode "
                            "process is not supported over KD)");
    if (o.multi) return make_error(22, "--multi is for user-mode processes; not with --kd");
    if (!o.config.empty())
      return make_error(22, "--kd with --config: give each lab VM's KD address as its \"kd\" in the file");
    return o;
  }
  if (!o.config.empty() && i >= args.size()) {
    // A lab: the file names each VM's ports.
    if (o.vm || o.local_kernel || attach || o.multi)
      return make_error(22, "--config without [HOST]:PORT serves the VMs of its file only");
    o.lab = true;
    return o;
  }
  if (!o.config.empty() && (o.vm || o.local_kernel))
    return make_error(22, "--config with [HOST]:PORT is a user-mode session's policy; not with --vm or --local-kernel");
  if (i >= args.size()) return make_error(22, "missing [HOST]:PORT");
  if (auto st = parse_comm(args[i++], o); !st) return st.error();
  // gdbserver also takes "COMM --attach PID".
  if (!attach && i < args.size() && args[i] == "--attach") {
    attach = true;
    ++i;
  }
  if (attach) {
    if (o.vm) return make_error(22, "--vm takes no PID");
    if (i >= args.size()) return make_error(22, "--attach needs a PID");
    auto pid = whole_number(args[i], 1, std::numeric_limits<int>::max());
    if (!pid) return make_error(22, "bad PID '" + args[i] + "'");
    o.attach_pid = *pid;
    if (++i != args.size()) return make_error(22, "unexpected arguments after PID");
    return o;
  }
  for (; i < args.size(); ++i) o.program.push_back(args[i]);
  if (o.local_kernel) {
    if (!o.program.empty() || attach) return make_error(22, "--local-kernel takes no program or PID");
    if (o.vm) return make_error(22, "--local-kernel and --vm are different sessions: give one");
    return o;
  }
  if (o.vm) {
    if (!o.program.empty()) return make_error(22, "--vm takes no program");
    return o;
  }
  if (o.program.empty() && !o.multi) return make_error(22, "missing PROG (or use --multi / --attach)");
  return o;
}

std::string absolute_program(const std::string& name, const std::string& cwd, const std::string& path_list) {
  if (name.empty() || name[0] == '/') return name;
  std::string here = path_in(cwd, name);
  if (name.find('/') != std::string::npos || is_program(here)) return here;
  // A bare name that is no program in the working directory: PATH's, else
  // the working directory's all the same (the start fails, and no later
  // directory can change that).
  return find_on_path(name, path_list, cwd).value_or(here);
}

}  // namespace dbgstub

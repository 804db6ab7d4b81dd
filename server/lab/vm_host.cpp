#include "server/lab/vm_host.h"

#include <spdlog/spdlog.h>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <iostream>

#include "server/lab/vm_recovery.h"
#include "server/plumbing/event_loop.h"

namespace dbgstub {

VmHost::VmHost(FrontDoor& door, VmHostConfig cfg) : door_(door), cfg_(std::move(cfg)) {
  // A libvirt domain's gdbstub port is new every time: the domain is what
  // its state file belongs to.
  std::string where = !cfg_.vm.libvirt_domain.empty()
                          ? "libvirt:" + cfg_.vm.libvirt_uri + "/" + cfg_.vm.libvirt_domain
                          : cfg_.vm.gdbstub_host + ":" + std::to_string(cfg_.vm.gdbstub_port);
  state_ = std::make_unique<VmStateFile>(cfg_.state_dir,
                                         VmIdentity{cfg_.state_name.empty() ? cfg_.name : cfg_.state_name, where});
  vm_ = std::make_unique<VmTarget>(io_, cfg_.vm.gdbstub_host, cfg_.vm.gdbstub_port);
  if (cfg_.lab) vm_->set_name(cfg_.name);
  vm_->set_log_packets(cfg_.options.log_packets);
  record_hold(*vm_, *state_);
  Options o = cfg_.options;
  if (cfg_.lab) o.kd = false;  // a lab VM's KD port comes from listen_kd
  server_ = std::make_unique<Server>(io_, o, *vm_, &door_);
  server_->hold_until_ready();
  record_terminations(server_->terminations(), *state_);
}

VmHost::~VmHost() {
  shutdown();
  join();
}

Status VmHost::listen() {
  // The state folder first: a VM another dbgstub serves is not served
  // twice (each would undo the other's hold).
  if (auto st = state_->lock(); !st) return st;
  prior_ = state_->load();
  if (cfg_.gdb)
    if (auto st = server_->listen(false); !st) return st;
  if (cfg_.kd)
    if (auto st = server_->listen_kd(cfg_.kd_host, cfg_.kd_port, false); !st)
      return make_error(st.error().code, "(kd) " + st.error().message);
  return ok_status();
}

void VmHost::start() {
  thread_ = std::thread([this] { run(); });
}

void VmHost::shutdown() {
  asio::post(io_, [this] { server_->shutdown(); });
}

void VmHost::post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

void VmHost::stop_listening() { server_->close_listeners(); }

std::optional<uint16_t> VmHost::gdb_port() const {
  if (!cfg_.gdb) return std::nullopt;
  return server_->port();
}

std::optional<uint16_t> VmHost::kd_port() const {
  if (!cfg_.kd) return std::nullopt;
  return server_->kd_port();
}

control::VmStatus VmHost::status() const {
  control::VmStatus s;
  s.name = cfg_.name;
  s.source = cfg_.source;
  s.gdb_port = gdb_port();
  s.kd_port = kd_port();
  // started_ is set on this thread once start-up is done; a request that
  // comes while start-up runs the loop (waiting on the agent) sees it unset.
  if (!started_) s.state = control::VmState::Starting;
  else if (vm_->unreachable()) s.state = control::VmState::Unreachable;
  else if (server_->has_session() && vm_->has_processes() && !vm_->running()) s.state = control::VmState::Halted;
  else s.state = control::VmState::Running;
  s.debugger = server_->debugger_address();
  for (const auto& p : server_->terminations().pending()) s.pending.push_back({p.pid, p.name, p.address});
  return s;
}

void VmHost::kill(int pid, KillDone done) {
  using control::KillOutcome;
  const std::string vm = "VM " + cfg_.name;
  if (!started_) return done(make_error(EBUSY, vm + " is still starting; try again"));
  GuestProcesses* guest = vm_->guest_processes();
  if (!guest) return done(make_error(95, vm + ": its guest's processes are not known (no symbols or task layout)"));
  bool debugger = server_->has_session();
  // Halted by its debugger: what .kill does, scheduled for its next resume.
  bool held = debugger && vm_->has_processes() && !vm_->running();
  if (debugger && !held && vm_->running())
    // Its memory can't be read without a halt, and a halt now would be a
    // stop its debugger did not ask for.
    return done(make_error(EBUSY, vm + " runs under a debugger (" + server_->debugger_address().value_or("?") +
                                      "): halt it there to have the kill scheduled, or use its \"monitor .kill\""));
  // Not held: this reads the task list, which connects to the VM's gdbstub
  // (halting it); release_target below lets it run again.
  auto procs = guest->list();
  auto let_go = [&] {
    if (!held) server_->release_target();
  };
  if (!procs) {
    let_go();
    return done(make_error(procs.error().code, vm + ": cannot list its processes: " + procs.error().message));
  }
  const GuestProcess* found = nullptr;
  for (const auto& p : *procs)
    if (p.pid == pid && !p.idle) {
      found = &p;
      break;
    }
  if (!found) {
    let_go();
    return done(make_error(3, vm + " has no process with pid " + std::to_string(pid)));
  }
  GuestProcess target = *found;
  auto text = server_->terminations().schedule(target);
  if (!text) {
    let_go();
    return done(text.error());
  }
  if (held) {
    spdlog::info("{}: control: {} scheduled (its debugger holds the VM halted)", cfg_.name,
                 describe_guest_process(target));
    return done(std::make_pair(KillOutcome::Scheduled, *text));
  }
  // Resumed, and ended from inside the guest: the reply waits for the
  // agent's answer about this process (others pending run alongside).
  server_->release_target([target, done](const GuestProcess& p, const Status& st, const std::string& line) {
    if (p.pid != target.pid || p.address != target.address) return;
    std::string msg = line.empty() || line.back() != '\n' ? line : line.substr(0, line.size() - 1);
    if (st) done(std::make_pair(KillOutcome::Terminated, msg));
    else done(make_error(st.error().code, msg));
  });
}

void VmHost::join() {
  if (thread_.joinable()) thread_.join();
}

void VmHost::run() {
  // The listeners and connections are the front door's: without this
  // the VM's loop would have no work and return at once. It ends when the
  // server stops it (shutdown).
  auto work = asio::make_work_guard(io_);
  if (!open_libvirt_gdbstub() || !start_up()) {
    close_libvirt_gdbstub();
    if (cfg_.on_ended) cfg_.on_ended();
    return;
  }
  started_ = true;
  server_->announce(cfg_.lab ? cfg_.name + ": " : "");
  server_->set_ready();
  run_event_loop(io_, std::chrono::microseconds(cfg_.options.spin_us));
  server_->finish();
  close_libvirt_gdbstub();
  if (cfg_.on_ended) cfg_.on_ended();
}

// QEMU listens on the port only while dbgstub serves the domain: nothing
// is left open for anyone else once it is done.
bool VmHost::open_libvirt_gdbstub() {
  if (!cfg_.libvirt) return true;
  std::string prefix = cfg_.lab ? cfg_.name + ": " : "";
  const std::string& dom = cfg_.vm.libvirt_domain;
  auto st = cfg_.libvirt->open_gdbstub(dom, cfg_.vm.gdbstub_port);
  if (!st) {
    // A dbgstub that was killed (SIGKILL) left the stub open: QEMU refuses
    // a second one. Closed, and opened again here.
    spdlog::info("{}libvirt domain {}: {}; closing its gdbstub and trying again", prefix, dom, st.error().message);
    (void)cfg_.libvirt->close_gdbstub(dom);
    st = cfg_.libvirt->open_gdbstub(dom, cfg_.vm.gdbstub_port);
  }
  if (!st) {
    std::cerr << "dbgstub: " + prefix + "cannot open the gdbstub of libvirt domain " + dom + ": " +
                     st.error().message + "\n"
              << std::flush;
    return false;
  }
  libvirt_open_ = true;
  spdlog::info("{}libvirt domain {}: gdbstub opened on 127.0.0.1:{}", prefix, dom, cfg_.vm.gdbstub_port);
  return true;
}

void VmHost::close_libvirt_gdbstub() {
  if (!cfg_.libvirt || !libvirt_open_) return;
  libvirt_open_ = false;
  std::string prefix = cfg_.lab ? cfg_.name + ": " : "";
  // Our connection first, so QEMU's stub has no client to drop (and the VM
  // is not left halted by it).
  vm_->release_all();
  if (auto st = cfg_.libvirt->close_gdbstub(cfg_.vm.libvirt_domain); !st)
    spdlog::info("{}libvirt domain {}: closing its gdbstub: {}", prefix, cfg_.vm.libvirt_domain, st.error().message);
  else
    spdlog::info("{}libvirt domain {}: gdbstub closed", prefix, cfg_.vm.libvirt_domain);
}

// What a debugger's first requests must not race: the symbols come through
// the guest agent, which answers only while the VM runs, so before
// connecting (which halts it); the kernel's types are read through the
// gdbstub while it is halted.
bool VmHost::start_up() {
  std::string prefix = cfg_.lab ? cfg_.name + ": " : "";
  bool agent = !cfg_.vm.qga.empty();
  // The guest view exists with or without an agent: without one, its
  // symbols come from the kernel's memory (kernel_finder).
  VmTarget* vm = vm_.get();
  guest_ = std::make_unique<guest::LinuxGuest>(
      io_, cfg_.vm.qga, [vm](uint64_t addr, std::size_t len) { return vm->read_memory(0, addr, len); });
  // First: a VM an earlier dbgstub left halted would keep the agent from
  // answering (issue #25).
  if (auto st = recover_vm(io_, *vm_, *state_, prior_, agent ? guest_.get() : nullptr); !st) {
    std::cerr << "dbgstub: " + prefix + st.error().message + "\n" << std::flush;
    if (!cfg_.lab) return false;
  }
  if (agent)
    if (auto st = guest_->fetch_symbols(std::chrono::seconds(20)); !st)
      spdlog::warn("{}no symbols through the guest agent: {}", prefix, st.error().message);
  if (auto st = vm_->connect(); !st) {
    if (!cfg_.lab) {
      std::cerr << "dbgstub: " + st.error().message + "\n" << std::flush;
      return false;
    }
    // One VM's trouble is its own: the lab serves the others, and this
    // one's debugger gets the error (its first request tries again).
    spdlog::error("{}{}", prefix, st.error().message);
    return true;
  }
  std::cerr << prefix + (cfg_.lab ? "connected to the " : "Connected to the ") + vm_->describe() + "\n" << std::flush;
  // Halted now: the kernel's symbols from its memory (no agent needed).
  if (auto st = guest_->find_symbols_in_memory(*vm_); !st)
    spdlog::warn("{}the guest kernel's symbols were not found in its memory: {}", prefix, st.error().message);
  if (guest_->ready()) {
    vm_->set_guest(guest_.get());
    // No agent: the guest kernel ends processes, called through the VM.
    if (!agent) guest_->set_kernel_caller(vm_.get());
    if (auto st = guest_->load_layout(); !st)
      spdlog::warn("{}the guest's processes will not be available: {}", prefix, st.error().message);
  }
  // A lab VM runs on until its debugger comes; so does one recovered after
  // a crash: nobody asked for it to be halted this time.
  if (cfg_.lab || prior_.needs_recovery()) vm_->release_all();
  return true;
}

}  // namespace dbgstub

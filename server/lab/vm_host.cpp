#include "server/lab/vm_host.h"

#include <spdlog/spdlog.h>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <iostream>

#include "server/plumbing/event_loop.h"

namespace dbgstub {

VmHost::VmHost(FrontDoor& door, VmHostConfig cfg) : door_(door), cfg_(std::move(cfg)) {
  vm_ = std::make_unique<VmTarget>(io_, cfg_.vm.gdbstub_host, cfg_.vm.gdbstub_port);
  vm_->set_name(cfg_.name);
  vm_->set_log_packets(cfg_.options.log_packets);
  Options o = cfg_.options;
  if (cfg_.lab) o.kd = false;  // a lab VM's KD port comes from listen_kd
  server_ = std::make_unique<Server>(io_, o, *vm_, &door_);
  server_->hold_until_ready();
}

VmHost::~VmHost() {
  shutdown();
  join();
}

Status VmHost::listen() {
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

void VmHost::join() {
  if (thread_.joinable()) thread_.join();
}

void VmHost::run() {
  // The listeners and connections are the front door's: without this
  // the VM's loop would have no work and return at once. It ends when the
  // server stops it (shutdown).
  auto work = asio::make_work_guard(io_);
  if (!start_up()) {
    if (cfg_.on_ended) cfg_.on_ended();
    return;
  }
  started_ = true;
  server_->announce(cfg_.lab ? cfg_.name + ": " : "");
  server_->set_ready();
  run_event_loop(io_, std::chrono::microseconds(cfg_.options.spin_us));
  server_->finish();
  if (cfg_.on_ended) cfg_.on_ended();
}

// What a debugger's first requests must not race: the symbols come through
// the guest agent, which answers only while the VM runs, so before
// connecting (which halts it); the kernel's types are read through the
// gdbstub while it is halted.
bool VmHost::start_up() {
  std::string prefix = cfg_.lab ? cfg_.name + ": " : "";
  if (!cfg_.vm.qga.empty()) {
    VmTarget* vm = vm_.get();
    guest_ = std::make_unique<guest::LinuxGuest>(
        io_, cfg_.vm.qga, [vm](uint64_t addr, std::size_t len) { return vm->read_memory(0, addr, len); });
    if (auto st = guest_->fetch_symbols(std::chrono::seconds(20)); !st)
      spdlog::warn("{}the guest's processes will not be available: {}", prefix, st.error().message);
    else
      vm_->set_guest(guest_.get());
  }
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
  if (guest_ && guest_->ready())
    if (auto st = guest_->load_layout(); !st)
      spdlog::warn("{}the guest's processes will not be available: {}", prefix, st.error().message);
  if (cfg_.lab) vm_->release_all();  // runs on until its debugger comes
  return true;
}

}  // namespace dbgstub

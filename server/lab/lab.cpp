#include "server/lab/lab.h"

#include <spdlog/spdlog.h>

#include <asio/signal_set.hpp>
#include <csignal>
#include <iostream>
#include <memory>
#include <vector>

#include "server/lab/lab_config.h"
#include "server/lab/vm_host.h"

namespace dbgstub {
namespace {

// Binds every host's ports, starts them, and waits until each has ended
// (SIGINT/SIGTERM end them all, resuming what they halted). The front door
// is declared first, so it outlives the hosts whose connections it holds.
int run_hosts(FrontDoor& door, std::vector<std::unique_ptr<VmHost>>& hosts) {
  for (auto& h : hosts) {
    if (auto st = h->listen(); !st) {
      std::cerr << "dbgstub: " << (hosts.size() > 1 ? h->name() + ": " : "") << st.error().message << "\n";
      return 1;
    }
  }
  asio::signal_set signals(door.io(), SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    for (auto& h : hosts) h->shutdown();
  });
  for (auto& h : hosts) h->start();
  bool all_started = true;
  for (auto& h : hosts) {
    h->join();
    all_started = all_started && h->started();
  }
  door.run([&] { signals.cancel(); });
  std::cerr << "dbgstub: exiting" << std::endl;
  return all_started ? 0 : 1;
}

}  // namespace

int serve_vm(const Options& opts) {
  FrontDoor door;
  VmHostConfig c;
  c.name = "vm";
  c.options = opts;
  c.gdb = true;
  c.vm = *opts.vm;
  c.state_dir = opts.state_dir;
  c.state_name = "gdbstub-" + opts.vm->gdbstub_host + "-" + std::to_string(opts.vm->gdbstub_port);
  std::vector<std::unique_ptr<VmHost>> hosts;
  hosts.push_back(std::make_unique<VmHost>(door, std::move(c)));
  return run_hosts(door, hosts);
}

int serve_lab(const Options& opts) {
  auto cfg = load_lab_config(opts.config);
  if (!cfg) {
    std::cerr << "dbgstub: " << cfg.error().message << "\n";
    return 2;
  }
  FrontDoor door;
  std::vector<std::unique_ptr<VmHost>> hosts;
  for (auto& v : cfg->vms) {
    VmHostConfig c;
    c.name = v.name;
    c.options = opts;
    c.options.host = v.host;
    c.options.port = v.port;
    c.options.kd = false;
    c.options.clients = v.clients;
    c.gdb = v.gdb;
    c.kd = v.kd;
    c.kd_host = v.kd_host;
    c.kd_port = v.kd_port;
    c.vm = v.vm;
    c.lab = true;
    c.state_dir = !opts.state_dir.empty() ? opts.state_dir : cfg->state_dir;
    c.on_ended = [&door, &hosts] { door.post([&hosts] { for (auto& h : hosts) h->shutdown(); }); };
    hosts.push_back(std::make_unique<VmHost>(door, std::move(c)));
  }
  return run_hosts(door, hosts);
}

}  // namespace dbgstub

// Drives server/lab/libvirt_source.h from the command line, for
// tests/integration/test_libvirt_source.py (a real libvirtd, real domains):
//   libvirt_probe URI list                     one line per active domain: NAME agent=0|1
//   libvirt_probe URI watch SECONDS            "watching", then "started NAME" / "stopped NAME" lines
//   libvirt_probe URI open-gdbstub DOM PORT | close-gdbstub DOM
//   libvirt_probe URI agent DOM JSON | hmp DOM COMMAND
//   libvirt_probe URI snapshot DOM NAME | revert DOM NAME | delete-snapshot DOM NAME
// Exit 0 on success, 1 with libvirt's error on stderr, 2 on bad usage.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "server/lab/libvirt_source.h"

using namespace dbgstub;

namespace {
int fail(const Error& e) {
  std::cerr << "libvirt_probe: " << e.message << "\n";
  return 1;
}
int done(const Status& st) { return st ? 0 : fail(st.error()); }
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() < 2) {
    std::cerr << "usage: libvirt_probe URI COMMAND ARGS...\n";
    return 2;
  }
  const std::string& cmd = a[1];
  LibvirtSource::EventHandler handler;
  if (cmd == "watch")
    handler = [](const LibvirtLifecycle& ev) {
      std::cout << (ev.kind == LibvirtLifecycle::Kind::Started ? "started " : "stopped ") << ev.domain
                << (ev.from_snapshot ? " from-snapshot" : "") << std::endl;
    };
  auto src = LibvirtSource::connect(a[0], handler);
  if (!src) return fail(src.error());
  LibvirtSource& lv = **src;
  auto need = [&](std::size_t n) { return a.size() == n + 2; };
  if (cmd == "list" && need(0)) {
    auto doms = lv.running_domains();
    if (!doms) return fail(doms.error());
    for (auto& d : *doms) std::cout << d.name << " agent=" << d.has_agent << "\n";
    return 0;
  }
  if (cmd == "watch" && need(1)) {
    std::cout << "watching" << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(std::atoi(a[2].c_str())));
    return 0;
  }
  if (cmd == "open-gdbstub" && need(2)) return done(lv.open_gdbstub(a[2], static_cast<uint16_t>(std::atoi(a[3].c_str()))));
  if (cmd == "close-gdbstub" && need(1)) return done(lv.close_gdbstub(a[2]));
  if ((cmd == "agent" || cmd == "hmp") && need(2)) {
    auto r = cmd == "agent" ? lv.agent_command(a[2], a[3], 10) : lv.hmp(a[2], a[3]);
    if (!r) return fail(r.error());
    std::cout << *r << "\n";
    return 0;
  }
  if (cmd == "snapshot" && need(2)) return done(lv.create_snapshot(a[2], a[3]));
  if (cmd == "revert" && need(2)) return done(lv.revert_snapshot(a[2], a[3]));
  if (cmd == "delete-snapshot" && need(2)) return done(lv.delete_snapshot(a[2], a[3]));
  std::cerr << "libvirt_probe: bad command or arguments\n";
  return 2;
}

// One VM served on a thread of its own: its event loop, its VmTarget (the
// gdbstub client), its guest view (symbols, processes, the guest agent)
// and its Server. Nothing one VM does (a gdbstub that hangs for its
// deadline, a slow start-up, an agent busy with another client) holds
// another VM's thread; the debuggers' sockets are on the FrontDoor, so
// even this VM's own debugger is acknowledged while its thread waits.
#pragma once
#include <asio/io_context.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "server/app/options.h"
#include "server/lab/control_protocol.h"
#include "server/lab/libvirt_source.h"
#include "server/lab/vm_state.h"
#include "server/plumbing/front_door.h"
#include "server/plumbing/server.h"
#include "targets/guest/linux_guest.h"
#include "targets/vm/vm_target.h"

namespace dbgstub {

struct VmHostConfig {
  std::string name;     // in errors and log lines
  Options options;      // options.host:port for GDB (with gdb), spin, logging...
  bool gdb = true;      // listen for GDB on options.host:port
  bool kd = false;      // listen for WinDbg on kd_host:kd_port
  std::string kd_host;
  uint16_t kd_port = 0;
  VmOptions vm;
  bool lab = false;     // a lab entry: its lines start with "NAME: ", it
                        // runs until its debugger comes, and a VM that
                        // can't be reached at start is served anyway
  std::function<void()> on_ended;  // on the VM's thread, when it stops serving
  // Where the VM's state file goes (server/lab/vm_state.h) and its name
  // there: a lab entry's name, or "gdbstub-HOST-PORT" for --vm.
  std::string state_dir;
  std::string state_name;
  // A libvirt domain (vm.libvirt_domain): its gdbstub is opened through
  // `libvirt` on vm.gdbstub_port when the VM's thread starts, and closed
  // when it stops serving (shutdown, the domain gone, start-up failed).
  std::shared_ptr<LibvirtSource> libvirt;
  std::string source = "file";  // `ctl status`'s "source"
};

class VmHost {
 public:
  VmHost(FrontDoor& door, VmHostConfig cfg);
  ~VmHost();
  VmHost(const VmHost&) = delete;
  VmHost& operator=(const VmHost&) = delete;

  // Binds the listening sockets (now, on the caller's thread, so a port in
  // use is an error at once). Connections are taken and acknowledged from
  // then on, and wait for start() to have found the VM.
  Status listen();
  // On the VM's own thread: start-up (the guest's symbols through the
  // agent, connecting to the gdbstub, the kernel's types), then serving
  // until shutdown().
  void start();
  // From any thread.
  void shutdown();
  void join();
  // After join(): false when a single VM (not a lab's) could not be reached.
  bool started() const { return started_; }
  const std::string& name() const { return cfg_.name; }

  // The control socket's way in (server/lab/control_socket.h): nothing
  // touches a VM but its own thread, so the front door posts there.
  void post(std::function<void()> fn);
  // On the VM's thread: what `dbgstub ctl status` shows of it.
  control::VmStatus status() const;
  // The ports bound by listen() (set before start(): readable anywhere).
  std::optional<uint16_t> gdb_port() const;
  std::optional<uint16_t> kd_port() const;
  // On the VM's thread: ends guest process `pid` as "monitor .kill" would,
  // with the VM's termination schedule. At once (halt to find it, resume,
  // end it through the guest agent) when no debugger holds the VM halted;
  // scheduled for the debugger's next resume when one does. `done` is
  // called once, on the VM's thread.
  using KillDone = std::function<void(Result<std::pair<control::KillOutcome, std::string>>)>;
  void kill(int pid, KillDone done);
  // On the front door's thread: stop accepting debuggers now, so that a
  // lab reload can bind the same port for the entry's new version.
  void stop_listening();

 private:
  void run();
  bool start_up();
  bool open_libvirt_gdbstub();
  void close_libvirt_gdbstub();

  FrontDoor& door_;
  VmHostConfig cfg_;
  asio::io_context io_;
  // Made before the target, so it outlives the target's last release.
  std::unique_ptr<VmStateFile> state_;
  VmState prior_;  // what a dbgstub that died holding this VM left
  std::unique_ptr<VmTarget> vm_;
  std::unique_ptr<guest::LinuxGuest> guest_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::atomic<bool> started_{false};
  bool libvirt_open_ = false;  // on the VM's thread
};

}  // namespace dbgstub

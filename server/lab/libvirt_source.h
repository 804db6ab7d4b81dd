// The VMs one libvirt runs, as targets for a lab: its running domains, their
// lifecycle (started, stopped) as events, and what dbgstub does to a domain
// through libvirt's C API (never virsh, never the domain's own sockets):
//   - opens its gdbstub on a loopback port when a debugger needs it, and
//     closes it again, through the QEMU monitor passthrough (HMP
//     `gdbserver tcp:127.0.0.1:PORT` / `gdbserver none`): the domain XML
//     needs nothing added, and no stub port is left open once dbgstub is done
//     (libvirt marks such a domain "tainted: custom-monitor", harmlessly);
//   - runs guest agent commands through libvirt's agent API, only for a
//     domain whose XML has the agent channel (org.qemu.guest_agent.0);
//   - takes and reverts snapshots with memory and disks (internal, so every
//     writable disk must be qcow2; libvirt's error says which is not).
// libvirt's default event loop runs on a thread of its own, started once
// per process; events are handed to the callback on that thread, so the
// callback must only post work (e.g. asio::post to the lab's loop).
// Every call is synchronous and may block for the monitor or agent's time.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace dbgstub {

struct LibvirtDomain {
  std::string name;
  std::string uuid;
  bool has_agent = false;  // the XML has a channel named org.qemu.guest_agent.0
};

struct LibvirtLifecycle {
  enum class Kind { Started, Stopped };
  std::string domain;
  Kind kind = Kind::Started;
  bool from_snapshot = false;  // a revert restarted it: the same domain, its state replaced
};

class LibvirtSource {
 public:
  using EventHandler = std::function<void(const LibvirtLifecycle&)>;

  // Connects to `uri` ("qemu:///system"); with a handler, lifecycle events
  // go to it (from libvirt's event thread) until the source is destroyed.
  static Result<std::unique_ptr<LibvirtSource>> connect(const std::string& uri, EventHandler on_event = {});
  ~LibvirtSource();
  LibvirtSource(const LibvirtSource&) = delete;
  LibvirtSource& operator=(const LibvirtSource&) = delete;

  const std::string& uri() const { return uri_; }
  // Active domains (running or paused), by name.
  Result<std::vector<LibvirtDomain>> running_domains();
  Result<LibvirtDomain> domain(const std::string& name);

  // HMP `gdbserver tcp:127.0.0.1:PORT`: QEMU listens there (one client at a
  // time; a client that connects halts the VM, as with -gdb).
  Status open_gdbstub(const std::string& domain, uint16_t port);
  // HMP `gdbserver none`: the port is closed (a connected client dropped).
  Status close_gdbstub(const std::string& domain);
  // A raw HMP command's output (the monitor passthrough).
  Result<std::string> hmp(const std::string& domain, const std::string& command);

  // One guest agent command (JSON, e.g. {"execute":"guest-ping"}); its reply
  // JSON. An error for a domain without an agent channel, without asking.
  Result<std::string> agent_command(const std::string& domain, const std::string& json, int timeout_seconds);

  // Snapshot NAME with the memory and disks; names are [A-Za-z0-9._-]+.
  Status create_snapshot(const std::string& domain, const std::string& name);
  // Back to NAME: the domain runs from the snapshot's state.
  Status revert_snapshot(const std::string& domain, const std::string& name);
  Status delete_snapshot(const std::string& domain, const std::string& name);

 private:
  struct Impl;
  explicit LibvirtSource(std::unique_ptr<Impl> impl, std::string uri);
  std::unique_ptr<Impl> impl_;
  std::string uri_;
};

// The snapshot name rule above, for callers that check before connecting.
bool valid_snapshot_name(const std::string& name);

}  // namespace dbgstub

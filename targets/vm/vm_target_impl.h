// VmTarget's state, shared by its source files: vm_target.cpp (queries,
// registers, memory, breakpoints), vm_handshake.cpp (connecting and
// learning what the stub offers), vm_execution.cpp (resume, stops,
// interrupt, release).
#pragma once
#include <chrono>
#include <compare>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "protocol/rsp/client.h"
#include "targets/vm/gdbstub_connection.h"
#include "targets/vm/target_description.h"
#include "targets/vm/vm_target.h"

namespace dbgstub {

// What the stub said it can do, from the handshake.
struct StubOffer {
  std::string supported_reply;    // qSupported, as sent (for the log)
  bool multiprocess = false;      // thread ids are pPID.TID
  bool no_ack = false;            // QStartNoAckMode accepted
  bool vcont = false;             // vCont with c and s
  uint64_t packet_size = 0x400;   // the stub's PacketSize (bytes of payload)
};

struct VmTarget::Impl {
  // Attached: connected, handshake done. Released: let go at a debugger's
  // disconnect (the VM runs on); the next use connects again. Lost: the
  // connection failed mid-session; requests fail until the next release.
  enum class Link { Released, Attached, Lost };

  struct Breakpoint {
    BreakpointType type;
    uint64_t addr;
    uint64_t kind;
    auto operator<=>(const Breakpoint&) const = default;
  };

  Impl(asio::io_context& io, std::string host, uint16_t port, std::chrono::milliseconds timeout)
      : io(io), host(std::move(host)), port(port), conn(io, timeout) {}

  asio::io_context& io;
  std::string host;
  uint16_t port;
  vm::GdbstubConnection conn;
  Link link = Link::Released;
  std::string name;  // a lab entry's name; empty for a VM served alone
  std::string lost_reason;
  // When the stub was last heard from before the link was lost (a
  // timeout: its deadline earlier than the loss).
  std::chrono::steady_clock::time_point silent_since;
  bool lost_to_timeout = false;
  bool attach_failed = false;  // the last attach() failed (for a lab's status)
  StopHandler on_stop;
  HoldObserver on_hold;

  // Learned at the handshake.
  StubOffer offer;
  std::vector<ThreadRef> threads;
  std::map<std::pair<int, int>, std::string> thread_names;
  std::string target_xml;
  std::vector<vm::RegisterInfo> registers;
  std::optional<vm::RegisterInfo> pc, sp, fp;

  // Execution state.
  std::optional<StopEvent> last_stop;
  bool running = false;
  bool stepping = false;         // the running resume steps some vCPU
  bool interrupt_sent = false;
  std::optional<ThreadRef> g_thread;  // the stub's Hg selection, when known
  std::set<Breakpoint> breakpoints;   // inserted by dbgstub, removed on release

  std::string where() const { return host + ":" + std::to_string(port); }
  // "VM lab1 (gdbstub 127.0.0.1:1234)": how errors and log lines name it
  // ("the VM (gdbstub ...)" when it has no name).
  std::string who() const { return (name.empty() ? "the VM" : "VM " + name) + " (gdbstub " + where() + ")"; }

  // vm_handshake.cpp
  Status attach();
  Status ensure_attached();
  Status handshake();
  Result<std::string> read_document(const std::string& annex);
  Status read_threads();

  // vm_target.cpp
  Result<std::string> request(std::string_view payload);
  Status request_ok(std::string_view payload);
  void mark_lost(const Error& why);
  Error not_attached() const;
  rsp::ThreadId wire(ThreadRef t) const;
  ThreadRef from_wire(const rsp::ThreadId& id) const;
  Status select(ThreadRef t);
  Result<uint64_t> read_pc(ThreadRef t);
  void forget_session();
  void report_hold();

  // vm_execution.cpp
  Result<std::string> resume_request(const std::vector<ResumeAction>& actions);
  void wait_for_stop();
  void on_stop_packet(Result<std::string> packet);
  StopEvent to_event(const rsp::client::StopReply& reply);
  Status stop_running_vm();
  void release();
};

}  // namespace dbgstub

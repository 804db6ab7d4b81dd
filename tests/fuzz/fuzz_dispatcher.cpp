// libFuzzer target: the Dispatcher on arbitrary packet sequences, against a
// real ProcessTarget holding a real, stopped child (/bin/sleep).
//
// Input format: a framed session as on the wire, "$payload#cs$payload#cs...",
// except that checksums are not checked (the framer has its own target, and
// a mutated packet should reach the dispatcher). A '$' starts a packet that
// ends at the next '#' (or at the end of the input); the two bytes after the
// '#' are skipped; escapes and run-length encoding are expanded as the
// framer does (a body that doesn't decode is passed on raw). A 0x03 byte
// outside packets is an interrupt; other bytes outside packets are ignored.
// The seed corpus (corpus/dispatcher/) holds real gdb and lldb sessions.
//
// Packets that would let the child run or end it are dropped before the
// dispatcher sees them: c/C/s/S, vCont, vRun, vAttach, k, vKill, D and any
// monitor command naming "kill" or "exit". Everything else goes through,
// including M/X/G/P/Z writes: they land in the child (through ptrace and
// /proc/PID/mem), never in this process. After each input the writes are
// undone (memory restored, breakpoints removed, registers rewritten) so
// that runs stay reproducible.
#include <spdlog/spdlog.h>

#include <asio/io_context.hpp>
#include <cctype>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include "protocol/rsp/framing.h"
#include "protocol/rsp/request.h"
#include "server/gdb/dispatcher.h"
#include "targets/process/child_events.h"
#include "targets/process/process_target.h"

using namespace dbgstub;

namespace {

constexpr std::size_t kPacketSize = 0x4000;
constexpr std::size_t kMaxPacketsPerInput = 128;

struct World {
  asio::io_context io;
  std::unique_ptr<ChildEvents> events;
  std::unique_ptr<ProcessTarget> target;
  int pid = 0;
  ThreadRef thread;
  std::string registers;  // the child's registers at its first stop
};

World* world = nullptr;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_dispatcher: %s\n", what);
  std::abort();
}

bool wait_first_stop(World& w) {
  bool stopped = false;
  StopEvent first;
  w.target->set_stop_handler([&](const StopEvent& ev) {
    stopped = true;
    first = ev;
  });
  while (!stopped && w.io.run_one()) {
  }
  w.target->set_stop_handler(nullptr);
  return stopped && first.kind == StopEvent::Kind::Signal;
}

struct Packet {
  bool interrupt = false;
  std::string payload;
};

std::vector<Packet> split_session(std::string_view in) {
  std::vector<Packet> out;
  std::size_t i = 0;
  while (i < in.size() && out.size() < kMaxPacketsPerInput) {
    char c = in[i];
    if (c == '$') {
      std::size_t end = in.find('#', i + 1);
      std::string_view body = in.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1);
      Packet p;
      if (!rsp::decode_body(body, kPacketSize, p.payload)) p.payload.assign(body);
      out.push_back(std::move(p));
      if (end == std::string_view::npos) break;
      i = end + 3;  // '#' and two checksum characters
    } else {
      if (c == '\x03') out.push_back(Packet{true, {}});
      ++i;
    }
  }
  return out;
}

bool mentions(const std::string& text, std::string_view word) {
  std::string lower;
  for (char c : text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return lower.find(word) != std::string::npos;
}

// True for requests that could resume, end or release the child.
bool dangerous(const rsp::Request& r) {
  if (std::holds_alternative<rsp::Resume>(r) || std::holds_alternative<rsp::VCont>(r) ||
      std::holds_alternative<rsp::VRun>(r) || std::holds_alternative<rsp::VAttach>(r) ||
      std::holds_alternative<rsp::Kill>(r) || std::holds_alternative<rsp::VKill>(r) ||
      std::holds_alternative<rsp::Detach>(r))
    return true;
  if (auto* m = std::get_if<rsp::MonitorCommand>(&r)) return mentions(m->command, "kill") || mentions(m->command, "exit");
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Before libFuzzer starts any thread (its RSS watcher): every thread must
  // have SIGCHLD blocked for the signalfd in ChildEvents to see it.
  block_sigchld();
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::off);

  world = new World;
  world->events = std::make_unique<ChildEvents>(world->io);
  world->target = std::make_unique<ProcessTarget>(world->io, *world->events);
  LaunchSpec spec;
  spec.argv = {"/bin/sleep", "100000"};
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
  spec.disable_aslr = true;
  if (auto st = world->target->launch(spec); !st) die(st.error().message.c_str());
  if (!wait_first_stop(*world)) die("/bin/sleep did not reach its first stop");
  auto procs = world->target->processes();
  auto threads = world->target->threads();
  if (procs.size() != 1 || threads.size() != 1) die("unexpected process/thread count after launch");
  world->pid = procs[0].pid;
  world->thread = threads[0];
  auto regs = world->target->read_registers(world->thread);
  if (!regs) die("cannot read the child's registers");
  world->registers = *regs;
  std::fprintf(stderr, "fuzz_dispatcher: debugging /bin/sleep, pid %d (killed with us: PTRACE_O_EXITKILL)\n",
               world->pid);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = *world;
  ProcessTarget& target = *w.target;

  DispatcherConfig config;
  config.packet_size = kPacketSize;
  SessionHooks hooks;
  hooks.send = [](std::string reply) {
    // The dispatcher keeps replies within the packet size it advertises.
    if (reply.size() > kPacketSize) {
      std::fprintf(stderr, "fuzz_dispatcher: reply of %zu bytes exceeds PacketSize %zu: %.80s\n", reply.size(),
                   kPacketSize, reply.c_str());
      __builtin_trap();
    }
  };
  hooks.start_no_ack = [] {};
  hooks.exit_server = [] {};
  hooks.set_log_level = [](const std::string&) {};  // stay quiet

  std::vector<std::tuple<int, uint64_t, std::string>> memory_undo;  // pid, addr, old bytes
  std::vector<rsp::Breakpoint> inserted;
  bool registers_dirty = false;
  {
    Dispatcher dispatcher(target, config, hooks);
    for (const Packet& p : split_session(std::string_view(reinterpret_cast<const char*>(data), size))) {
      if (p.interrupt) {
        dispatcher.handle_interrupt();
        continue;
      }
      auto req = rsp::parse_request(p.payload);
      if (req) {
        if (dangerous(*req)) continue;
        if (auto* m = std::get_if<rsp::WriteMemory>(&*req); m && !m->data.empty()) {
          auto old = target.read_memory(w.pid, m->addr, m->data.size());
          if (old) memory_undo.emplace_back(w.pid, m->addr, std::move(*old));
        } else if (auto* b = std::get_if<rsp::Breakpoint>(&*req); b && b->insert) {
          inserted.push_back(*b);
        } else if (std::holds_alternative<rsp::WriteAllRegisters>(*req) ||
                   std::holds_alternative<rsp::WriteRegister>(*req)) {
          registers_dirty = true;
        }
      }
      dispatcher.handle_packet(p.payload);
      if (dispatcher.waiting_for_stop()) die("a request that got through the filter resumed the child");
    }
  }

  // Undo what the input did to the child.
  for (auto it = memory_undo.rbegin(); it != memory_undo.rend(); ++it)
    (void)target.write_memory(std::get<0>(*it), std::get<1>(*it), std::get<2>(*it));
  for (const auto& b : inserted)
    (void)target.remove_breakpoint(w.pid, static_cast<BreakpointType>(b.type), b.addr, b.kind);
  if (registers_dirty && !target.write_registers(w.thread, w.registers)) die("cannot restore the child's registers");

  if (w.io.stopped()) w.io.restart();
  w.io.poll();  // anything the child did (it should have done nothing)
  // threads() rather than processes(): the same bookkeeping, without the
  // readlink of /proc/PID/exe and the read of its comm for each input.
  if (target.running() || !target.has_processes() || target.threads().size() != 1 ||
      !target.thread_alive(w.thread))
    die("the child is no longer a stopped, traced process");
  return 0;
}

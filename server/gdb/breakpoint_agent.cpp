// Target-side breakpoint conditions and commands (GDB's
// ConditionalBreakpoints / BreakpointCommands): Z0/Z1 packets carry agent
// expressions, kept here per (pid, address). The target asks
// breakpoint_stops() where it handles a breakpoint hit, so a false
// condition costs no round trip: the thread steps over and runs on.
//
// Semantics as gdbserver's (mem-break.cc): the hit is a stop if any
// condition is true, or if evaluating one fails (gdb then decides).
// Commands (dprintf with `set dprintf-style agent`) run when the
// condition holds, and then the hit is not a stop. Unlike gdbserver, which
// runs commands at every hit, a false condition skips them too.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

#include "protocol/agent/agent_expr.h"
#include "protocol/rsp/hex.h"
#include "server/gdb/dispatcher.h"

namespace dbgstub {
namespace {

// Registers and memory of one stopped thread, for the interpreter.
class ThreadContext : public agent::Context {
 public:
  ThreadContext(Target& target, ThreadRef t, std::function<void(std::string_view)> out)
      : target_(target), t_(t), out_(std::move(out)) {}
  std::optional<uint64_t> reg(int regno) override {
    auto v = target_.read_register(t_, regno);
    if (!v || v->empty() || v->size() > 8) return std::nullopt;
    return rsp::from_le_bytes(*v);
  }
  bool read_memory(uint64_t addr, void* out, std::size_t len) override {
    auto m = target_.read_memory(t_.pid, addr, len);
    if (!m || m->size() != len) return false;
    std::copy(m->begin(), m->end(), static_cast<char*>(out));
    return true;
  }
  void print(std::string_view text) override { out_(text); }

 private:
  Target& target_;
  ThreadRef t_;
  std::function<void(std::string_view)> out_;
};

}  // namespace

Dispatcher::~Dispatcher() {
  *alive_ = false;
  target_.set_breakpoint_filter(nullptr);
}

bool Dispatcher::install_breakpoint_filter() {
  return target_.set_breakpoint_filter([this](ThreadRef t, uint64_t addr) { return breakpoint_stops(t, addr); });
}

void Dispatcher::record_breakpoint_agent(int pid, const rsp::Breakpoint& b) {
  std::pair<int, uint64_t> key{pid, b.addr};
  // Each Z replaces the conditions and commands (gdb resends them all).
  if (!b.insert || (b.conditions.empty() && b.commands.empty())) {
    bp_agent_.erase(key);
    return;
  }
  bp_agent_[key] = BreakpointAgent{b.conditions, b.commands, b.persist};
  install_breakpoint_filter();
}

// What printf commands print goes where gdbserver's goes: the stub's own
// stdout (the terminal the program shares), or stderr when stdout carries
// the protocol.
void Dispatcher::agent_output(std::string_view text) {
  int fd = config_.redirect_stdio ? STDERR_FILENO : STDOUT_FILENO;
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

bool Dispatcher::breakpoint_stops(ThreadRef t, uint64_t addr) {
  auto it = bp_agent_.find({t.pid, addr});
  if (it == bp_agent_.end()) return true;
  const BreakpointAgent& a = it->second;
  ThreadContext ctx(target_, t, [this](std::string_view s) { agent_output(s); });
  bool stop = a.conditions.empty();
  for (auto& cond : a.conditions) {
    auto r = agent::evaluate(cond, ctx, true);
    if (!r.ok()) {
      spdlog::info("breakpoint condition at {:#x}: {}; stopping for gdb to decide", addr, agent::status_name(r.status));
      stop = true;
      break;
    }
    if (r.value != 0) {
      stop = true;
      break;
    }
  }
  if (!stop) return false;
  if (a.commands.empty()) return true;
  for (auto& cmd : a.commands) {
    auto r = agent::evaluate(cmd, ctx, false);
    if (!r.ok()) {
      spdlog::info("breakpoint command at {:#x}: {}", addr, agent::status_name(r.status));
      break;
    }
  }
  return false;
}

}  // namespace dbgstub

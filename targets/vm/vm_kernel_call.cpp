// The call into the guest kernel (see vm_kernel_call.h), and VmTarget's
// side of it: the gdbstub requests, with the debugger's own breakpoints
// out of the way meanwhile.
#include "targets/vm/vm_kernel_call.h"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "protocol/rsp/hex.h"
#include "targets/vm/vm_target_impl.h"

namespace dbgstub::vm {
namespace {

// Runs the VM until `stopped` says a stop is the one awaited; other stops
// (a vCPU that hit the safe point's breakpoint together with the first one
// and is reported late) are resumed from. Nullopt: none by the deadline
// (the VM is halted again then).
Result<std::optional<ThreadRef>> run_until(CallControl& vm, CallControl::Clock::time_point deadline,
                                           const std::function<Result<bool>(ThreadRef)>& stopped) {
  while (true) {
    auto r = vm.resume_all(deadline);
    if (!r) return r.error();
    if (!*r) {
      if (auto st = vm.halt(); !st) return st.error();
      return std::optional<ThreadRef>();
    }
    auto is = stopped(**r);
    if (!is) return is.error();
    if (*is) return *r;
    spdlog::debug("kernel call: vCPU {} stopped on the way; resuming", (*r)->tid);
    if (CallControl::Clock::now() >= deadline) return std::optional<ThreadRef>();
  }
}

}  // namespace

Result<uint64_t> call_kernel_function(CallControl& vm, const KernelCall& call, const CallRegisters& regs) {
  using Clock = CallControl::Clock;
  if (call.args.size() > 6) return make_error(EINVAL, "a kernel call takes at most 6 arguments");
  double secs = std::chrono::duration<double>(call.wait).count();
  // 1. A vCPU at the safe point.
  if (auto st = vm.insert_breakpoint(call.safe_point); !st)
    return make_error(st.error().code, "the breakpoint at the safe point: " + st.error().message);
  auto at_safe_point = run_until(vm, Clock::now() + call.wait, [&](ThreadRef t) -> Result<bool> {
    auto pc = vm.read_register(t, regs.rip);
    if (!pc) return pc.error();
    return *pc == call.safe_point;
  });
  Status removed = vm.remove_breakpoint(call.safe_point);
  if (!at_safe_point) return at_safe_point.error();
  if (!*at_safe_point)
    return make_error(ETIMEDOUT, "no vCPU reached the safe point (" + rsp::hex_0x(call.safe_point) + ") within " +
                                     std::to_string(secs).substr(0, 4) + " s");
  if (!removed) return make_error(removed.error().code, "removing the safe point's breakpoint: " + removed.error().message);
  ThreadRef t = **at_safe_point;
  // Nothing is changed yet: the caller may still say no.
  if (call.check)
    if (auto st = call.check(); !st) return st.error();

  // 2. The call set up on that vCPU.
  auto saved = vm.read_registers(t);
  if (!saved) return saved.error();
  auto rsp = vm.read_register(t, regs.rsp);
  if (!rsp) return rsp.error();
  const uint64_t frame = *rsp - 16;
  auto old_stack = vm.read_memory(t, frame, 16);
  if (!old_stack) return old_stack.error();
  if (old_stack->size() != 16) return make_error(EIO, "the vCPU's stack at " + rsp::hex_0x(frame) + " is not readable");
  bool trap_in = false;
  // Puts everything back; the first failure is kept.
  auto undo = [&]() -> Status {
    Status first = ok_status();
    auto keep = [&first](Status st, const char* what) {
      if (!st && first) first = make_error(st.error().code, std::string(what) + ": " + st.error().message);
    };
    if (trap_in) keep(vm.remove_breakpoint(call.return_trap), "removing the return trap");
    keep(vm.write_registers(t, *saved), "restoring the vCPU's registers");
    keep(vm.write_memory(t, frame, *old_stack), "restoring the vCPU's stack");
    return first;
  };
  auto fail = [&](const Error& e) -> Error {
    if (auto st = undo(); !st) return make_error(e.code, e.message + " (and " + st.error().message + ")");
    return e;
  };
  Status st = vm.insert_breakpoint(call.return_trap);
  if (!st) return fail(st.error());
  trap_in = true;
  st = vm.write_memory(t, frame, rsp::le_bytes(call.return_trap, 8));
  const int arg_regs[] = {regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8, regs.r9};
  for (std::size_t i = 0; st && i < call.args.size(); ++i) st = vm.write_register(t, arg_regs[i], call.args[i]);
  if (st) st = vm.write_register(t, regs.rsp, frame);
  if (st) st = vm.write_register(t, regs.rip, call.function);
  if (!st) return fail(st.error());

  // 3. Until it returns: that vCPU at the trap, its frame popped.
  auto returned = run_until(vm, Clock::now() + call.wait, [&](ThreadRef s) -> Result<bool> {
    if (s != t) return false;
    auto pc = vm.read_register(s, regs.rip);
    if (!pc) return pc.error();
    auto sp = vm.read_register(s, regs.rsp);
    if (!sp) return sp.error();
    return *pc == call.return_trap && *sp == *rsp - 8;
  });
  if (!returned) return fail(returned.error());
  if (!*returned)
    return fail(make_error(ETIMEDOUT, "the call of " + rsp::hex_0x(call.function) + " did not return within " +
                                          std::to_string(secs).substr(0, 4) + " s"));
  auto rax = vm.read_register(t, regs.rax);
  if (!rax) return fail(rax.error());
  // 4. The vCPU back where it was.
  if (auto u = undo(); !u) return u.error();
  return *rax;
}

}  // namespace dbgstub::vm

namespace dbgstub {
namespace {

namespace client = rsp::client;

}  // namespace

// vm::CallControl on VmTarget's link. The safe point's and the return trap's
// breakpoints are in the hold (so a dbgstub that dies meanwhile has them
// removed after, server/lab/vm_recovery.h) but are never the debugger's.
class VmCallControl : public vm::CallControl {
 public:
  explicit VmCallControl(VmTarget::Impl& m) : m_(m) {}

  // The registers' numbers in the VM's description (QEMU's by default).
  vm::CallRegisters registers() const {
    vm::CallRegisters r;
    auto num = [this](const char* name, int fallback) {
      auto found = vm::find_register(m_.registers, {name});
      return found ? found->regno : fallback;
    };
    r.rax = num("rax", r.rax);
    r.rcx = num("rcx", r.rcx);
    r.rdx = num("rdx", r.rdx);
    r.rsi = num("rsi", r.rsi);
    r.rdi = num("rdi", r.rdi);
    r.rsp = num("rsp", r.rsp);
    r.r8 = num("r8", r.r8);
    r.r9 = num("r9", r.r9);
    r.rip = num("rip", r.rip);
    return r;
  }

  Status insert_breakpoint(uint64_t addr) override {
    auto st = m_.request_ok(client::breakpoint_request(true, 0, addr, 1));
    if (!st) return st;
    m_.breakpoints.insert({BreakpointType::Software, addr, 1});
    m_.report_hold();
    return ok_status();
  }
  Status remove_breakpoint(uint64_t addr) override {
    auto st = m_.request_ok(client::breakpoint_request(false, 0, addr, 1));
    if (st) {
      m_.breakpoints.erase({BreakpointType::Software, addr, 1});
      m_.report_hold();
    }
    return st;
  }
  Result<std::optional<ThreadRef>> resume_all(Clock::time_point deadline) override {
    if (m_.link != VmTarget::Impl::Link::Attached) return m_.not_attached();
    std::string payload = m_.offer.vcont ? "vCont;c" : "c";
    if (auto st = m_.conn.send(payload); !st) {
      m_.mark_lost(st.error());
      return st.error();
    }
    m_.g_thread.reset();  // the stub selects the vCPU that stops
    while (true) {
      auto p = m_.conn.next_packet_until(deadline);
      if (!p) {
        m_.mark_lost(p.error());
        return p.error();
      }
      if (!*p) return std::optional<ThreadRef>();
      if (client::is_console_output(**p)) continue;
      auto reply = client::parse_stop_reply(**p);
      if (!reply) return reply.error();
      if (reply->kind != client::StopReply::Kind::Signal) {
        Error e = make_error(ESRCH, "the VM has ended (the stub replied " + **p + ")");
        m_.mark_lost(e);
        return e;
      }
      if (reply->thread && reply->thread->tid > 0) return std::optional<ThreadRef>(m_.from_wire(*reply->thread));
      return std::optional<ThreadRef>(m_.threads.empty() ? ThreadRef{1, 1} : m_.threads.front());
    }
  }
  Status halt() override {
    if (auto st = m_.conn.send_interrupt(); !st) {
      m_.mark_lost(st.error());
      return st;
    }
    while (true) {
      auto p = m_.conn.next_packet();
      if (!p) {
        m_.mark_lost(p.error());
        return p.error();
      }
      if (client::is_console_output(*p)) continue;
      m_.g_thread.reset();
      return ok_status();
    }
  }
  Result<std::string> read_registers(ThreadRef t) override {
    if (auto st = m_.select(t); !st) return st.error();
    auto r = m_.request(client::read_registers_request());
    if (!r) return r.error();
    auto regs = client::parse_register_reply(*r);
    if (!regs) return regs.error();
    return std::move(regs->bytes);
  }
  Status write_registers(ThreadRef t, const std::string& data) override {
    if (auto st = m_.select(t); !st) return st;
    return m_.request_ok(client::write_registers_request(data));
  }
  Result<uint64_t> read_register(ThreadRef t, int regno) override {
    if (auto st = m_.select(t); !st) return st.error();
    auto r = m_.request(client::read_register_request(regno));
    if (!r) return r.error();
    auto reg = client::parse_register_reply(*r);
    if (!reg) return reg.error();
    return rsp::from_le_bytes(reg->bytes);
  }
  Status write_register(ThreadRef t, int regno, uint64_t value) override {
    if (auto st = m_.select(t); !st) return st;
    return m_.request_ok(client::write_register_request(regno, rsp::le_bytes(value, 8)));
  }
  Result<std::string> read_memory(ThreadRef t, uint64_t addr, std::size_t len) override {
    if (auto st = m_.select(t); !st) return st.error();
    auto r = m_.request(client::read_memory_request(addr, len));
    if (!r) return r.error();
    return client::parse_memory_reply(*r, len);
  }
  Status write_memory(ThreadRef t, uint64_t addr, const std::string& data) override {
    if (auto st = m_.select(t); !st) return st;
    return m_.request_ok(client::write_memory_request(addr, data));
  }

 private:
  VmTarget::Impl& m_;
};


// The debugger's breakpoints and watchpoints are out of the stub for the
// length of the call (other vCPUs run through them unseen meanwhile, a few
// milliseconds), then back; so no stop of theirs comes in the middle.
Result<uint64_t> VmTarget::call_kernel(const KernelCall& call) {
  Impl& m = *impl_;
  if (auto st = m.ensure_attached(); !st) return st.error();
  if (m.running) {
    // Only when the debugger has gone (the VM is let go after).
    if (auto st = m.stop_running_vm(); !st) {
      m.mark_lost(st.error());
      return st.error();
    }
  }
  std::vector<Impl::Breakpoint> hidden;
  Status st = ok_status();
  for (const auto& b : m.breakpoints) {
    st = m.request_ok(client::breakpoint_request(false, static_cast<int>(b.type), b.addr, b.kind));
    if (!st) break;
    hidden.push_back(b);
  }
  Result<uint64_t> result = st ? Result<uint64_t>(0) : Result<uint64_t>(st.error());
  if (st) {
    VmCallControl control(m);
    result = vm::call_kernel_function(control, call, control.registers());
  }
  for (const auto& b : hidden) {
    if (m.link != Impl::Link::Attached) break;
    if (auto s = m.request_ok(client::breakpoint_request(true, static_cast<int>(b.type), b.addr, b.kind)); !s) {
      spdlog::warn("VM: putting back the breakpoint at {:#x} after a kernel call: {}", b.addr, s.error().message);
      m.breakpoints.erase(b);
      m.report_hold();
    }
  }
  m.g_thread.reset();
  return result;
}

}  // namespace dbgstub

// The call into a guest kernel (targets/vm/vm_kernel_call.h) against a
// fake VM: a vCPU borrowed at the safe point, the arguments and the return
// frame, the return trap, and everything put back, whatever happens.
#include <doctest/doctest.h>

#include <cerrno>
#include <map>
#include <set>

#include "targets/vm/vm_kernel_call.h"

using namespace dbgstub;

namespace {

constexpr uint64_t kSchedule = 0xffffffff81e00000;
constexpr uint64_t kSendSig = 0xffffffff810a0000;
constexpr uint64_t kTrap = 0xffffffff81000000;
constexpr uint64_t kStack = 0xffffc90000010f58;  // ≡ 8 mod 16, as at a function's entry

// Two vCPUs; vCPU 2 reaches the safe point. The called function "runs"
// when the VM resumes with a vCPU's rip at it: it records its arguments,
// sets rax, and returns (pops the return address).
struct FakeVm : vm::CallControl {
  std::map<int, std::map<int, uint64_t>> regs;  // vCPU -> regno -> value
  std::map<uint64_t, unsigned char> mem;
  std::set<uint64_t> bps;
  bool reaches_safe_point = true;
  bool function_returns = true;
  bool late_stop_at_safe_point = false;  // vCPU 1 reported once at the old safe point
  uint64_t result = 0;
  std::vector<uint64_t> seen_args;
  uint64_t seen_rsp = 0;
  int halts = 0;
  int resumes = 0;

  FakeVm() {
    for (int t : {1, 2})
      for (int r = 0; r < 24; ++r) regs[t][r] = 0x1000u * static_cast<unsigned>(t) + static_cast<unsigned>(r);
    regs[2][7] = kStack + 16 * 4;
    for (uint64_t a = kStack; a < kStack + 128; ++a) mem[a] = static_cast<unsigned char>(a * 7);
  }
  uint64_t load64(uint64_t a) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | mem[a + static_cast<uint64_t>(i)];
    return v;
  }

  Status insert_breakpoint(uint64_t addr) override {
    bps.insert(addr);
    return ok_status();
  }
  Status remove_breakpoint(uint64_t addr) override {
    bps.erase(addr);
    return ok_status();
  }
  Result<std::optional<ThreadRef>> resume_all(Clock::time_point) override {
    ++resumes;
    if (regs[2][16] == kSendSig) {
      if (late_stop_at_safe_point) {
        late_stop_at_safe_point = false;
        regs[1][16] = kSchedule;
        return std::optional<ThreadRef>(ThreadRef{1, 1});
      }
      if (!function_returns) return std::optional<ThreadRef>();
      seen_args = {regs[2][5], regs[2][4], regs[2][3]};
      seen_rsp = regs[2][7];
      regs[2][0] = result;
      regs[2][16] = load64(regs[2][7]);
      regs[2][7] += 8;
      regs[2][5] = 0xdead;  // clobbered by the call
      if (bps.count(regs[2][16])) return std::optional<ThreadRef>(ThreadRef{1, 2});
      return std::optional<ThreadRef>();
    }
    if (reaches_safe_point && bps.count(kSchedule)) {
      regs[2][16] = kSchedule;
      return std::optional<ThreadRef>(ThreadRef{1, 2});
    }
    return std::optional<ThreadRef>();
  }
  Status halt() override {
    ++halts;
    return ok_status();
  }
  Result<std::string> read_registers(ThreadRef t) override {
    std::string s;
    for (auto& [r, v] : regs[t.tid])
      for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  }
  Status write_registers(ThreadRef t, const std::string& data) override {
    std::size_t off = 0;
    for (auto& [r, v] : regs[t.tid]) {
      v = 0;
      for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data[off + static_cast<std::size_t>(i)]);
      off += 8;
    }
    return ok_status();
  }
  Result<uint64_t> read_register(ThreadRef t, int regno) override { return regs[t.tid][regno]; }
  Status write_register(ThreadRef t, int regno, uint64_t value) override {
    regs[t.tid][regno] = value;
    return ok_status();
  }
  Result<std::string> read_memory(ThreadRef, uint64_t addr, std::size_t len) override {
    std::string s;
    for (std::size_t i = 0; i < len; ++i) s += static_cast<char>(mem[addr + i]);
    return s;
  }
  Status write_memory(ThreadRef, uint64_t addr, const std::string& data) override {
    for (std::size_t i = 0; i < data.size(); ++i) mem[addr + i] = static_cast<unsigned char>(data[i]);
    return ok_status();
  }
};

KernelCall kill_call() {
  KernelCall c;
  c.safe_point = kSchedule;
  c.function = kSendSig;
  c.args = {9, 0xffff888004a38000, 1};
  c.return_trap = kTrap;
  c.wait = std::chrono::milliseconds(100);
  return c;
}

}  // namespace

TEST_CASE("kernel call: borrowed at the safe point, called, and put back") {
  FakeVm vm;
  vm.result = 0;
  auto mem_before = vm.mem;
  bool checked = false;
  KernelCall c = kill_call();
  c.check = [&] {
    checked = true;
    CHECK(vm.regs[2][16] == kSchedule);  // halted at the safe point
    return ok_status();
  };
  auto r = vm::call_kernel_function(vm, c);
  REQUIRE(r);
  CHECK(*r == 0);
  CHECK(checked);
  CHECK(vm.seen_args == std::vector<uint64_t>{9, 0xffff888004a38000, 1});
  const uint64_t old_rsp = kStack + 64;
  CHECK(vm.seen_rsp == old_rsp - 16);
  CHECK(vm.seen_rsp % 16 == 8);  // as at any function's entry
  CHECK(vm.bps.empty());
  // Registers as at the safe point (rip there, the call's clobbers undone).
  CHECK(vm.regs[2][16] == kSchedule);
  CHECK(vm.regs[2][7] == old_rsp);
  CHECK(vm.regs[2][5] == 0x2005);
  CHECK(vm.regs[2][0] == 0x2000);
  CHECK(vm.mem == mem_before);  // the 16 bytes below rsp too
}

TEST_CASE("kernel call: the function's return value is the result") {
  FakeVm vm;
  vm.result = static_cast<uint64_t>(-ESRCH);
  auto r = vm::call_kernel_function(vm, kill_call());
  REQUIRE(r);
  CHECK(static_cast<int64_t>(*r) == -ESRCH);
}

TEST_CASE("kernel call: no vCPU at the safe point in time") {
  FakeVm vm;
  vm.reaches_safe_point = false;
  auto regs_before = vm.regs;
  auto r = vm::call_kernel_function(vm, kill_call());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ETIMEDOUT);
  CHECK(vm.halts == 1);
  CHECK(vm.bps.empty());
  CHECK(vm.regs == regs_before);
}

TEST_CASE("kernel call: a check that says no changes nothing") {
  FakeVm vm;
  KernelCall c = kill_call();
  c.check = [] { return Status(make_error(ESRCH, "it had already gone")); };
  auto mem_before = vm.mem;
  auto r = vm::call_kernel_function(vm, c);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ESRCH);
  CHECK(vm.seen_args.empty());
  CHECK(vm.bps.empty());
  CHECK(vm.regs[2][16] == kSchedule);
  CHECK(vm.mem == mem_before);
}

TEST_CASE("kernel call: a call that does not return is undone") {
  FakeVm vm;
  vm.function_returns = false;
  auto mem_before = vm.mem;
  auto r = vm::call_kernel_function(vm, kill_call());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ETIMEDOUT);
  CHECK(vm.bps.empty());
  CHECK(vm.regs[2][16] == kSchedule);
  CHECK(vm.regs[2][7] == kStack + 64);
  CHECK(vm.mem == mem_before);
}

TEST_CASE("kernel call: another vCPU's late stop on the way is resumed from") {
  FakeVm vm;
  vm.late_stop_at_safe_point = true;
  vm.result = 0;
  auto r = vm::call_kernel_function(vm, kill_call());
  REQUIRE(r);
  CHECK(*r == 0);
  CHECK(vm.seen_args.size() == 3);
  CHECK(vm.bps.empty());
}

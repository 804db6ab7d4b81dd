#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/mode_policy.h"
#include "server/termination_schedule.h"

#include <cerrno>
#include <set>

using namespace dbgstub;

namespace {

enum class Expect { Allowed, Converted, Refused };

struct KillRow {
  Mode mode;
  KillSource source;
  KillDecision::Action action;
  const char* message_part;  // "" when none is expected
};

struct OpRow {
  Mode mode;
  Operation op;
  bool allowed;
  const char* message_part;
};

}  // namespace

// Every (mode, kill request) pair: what the one policy decides.
TEST_CASE("kill policy table: mode x request") {
  using A = KillDecision::Action;
  const std::vector<KillRow> rows = {
      {Mode::User, KillSource::PacketK, A::KillNow, ""},
      {Mode::User, KillSource::PacketVKill, A::KillNow, ""},
      {Mode::User, KillSource::MonitorKill, A::KillNow, ""},
      // Kernel mode never ends the machine: the process is scheduled for
      // termination at the next run (WinDbg's kernel-mode .kill).
      {Mode::Kernel, KillSource::PacketK, A::Schedule, ""},
      {Mode::Kernel, KillSource::PacketVKill, A::Schedule, ""},
      {Mode::Kernel, KillSource::MonitorKill, A::Schedule, ""},
      {Mode::LocalKernel, KillSource::PacketK, A::Refuse, ".kill is not supported in a local kernel session"},
      {Mode::LocalKernel, KillSource::PacketVKill, A::Refuse, ".kill is not supported in a local kernel session"},
      {Mode::LocalKernel, KillSource::MonitorKill, A::Refuse, ".kill is not supported in a local kernel session"},
  };
  for (const auto& r : rows) {
    auto d = ModePolicy::kill(r.mode, r.source);
    CAPTURE(mode_name(r.mode));
    CAPTURE(static_cast<int>(r.source));
    CHECK(d.action == r.action);
    CHECK(d.message.find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("operation policy table: mode x request") {
  const char* lk = "not supported in a local kernel session";
  const std::vector<OpRow> rows = {
      {Mode::User, Operation::Resume, true, ""},
      {Mode::User, Operation::Interrupt, true, ""},
      {Mode::User, Operation::WriteMemory, true, ""},
      {Mode::User, Operation::WriteRegisters, true, ""},
      {Mode::User, Operation::Breakpoint, true, ""},
      {Mode::User, Operation::Watchpoint, true, ""},
      {Mode::User, Operation::Detach, true, ""},
      {Mode::User, Operation::Run, true, ""},
      {Mode::User, Operation::Attach, true, ""},
      {Mode::User, Operation::HostFiles, true, ""},
      {Mode::Kernel, Operation::Resume, true, ""},
      {Mode::Kernel, Operation::Interrupt, true, ""},
      {Mode::Kernel, Operation::WriteMemory, true, ""},
      {Mode::Kernel, Operation::WriteRegisters, true, ""},
      {Mode::Kernel, Operation::Breakpoint, true, ""},
      {Mode::Kernel, Operation::Watchpoint, true, ""},
      {Mode::Kernel, Operation::Detach, true, ""},
      {Mode::Kernel, Operation::Run, true, ""},
      {Mode::Kernel, Operation::Attach, true, ""},
      {Mode::Kernel, Operation::HostFiles, false, "user-mode sessions only"},
      {Mode::LocalKernel, Operation::Resume, false, lk},
      {Mode::LocalKernel, Operation::Interrupt, false, lk},
      {Mode::LocalKernel, Operation::WriteMemory, false, lk},
      {Mode::LocalKernel, Operation::WriteRegisters, false, lk},
      {Mode::LocalKernel, Operation::Breakpoint, false, lk},
      {Mode::LocalKernel, Operation::Watchpoint, false, lk},
      {Mode::LocalKernel, Operation::Detach, true, ""},
      {Mode::LocalKernel, Operation::Run, false, "local kernel session"},
      {Mode::LocalKernel, Operation::Attach, false, "local kernel session"},
      {Mode::LocalKernel, Operation::HostFiles, false, "user-mode sessions only"},
  };
  for (const auto& r : rows) {
    auto st = ModePolicy::allows(r.mode, r.op);
    CAPTURE(mode_name(r.mode));
    CAPTURE(static_cast<int>(r.op));
    CHECK(st.ok() == r.allowed);
    if (!r.allowed) CHECK(st.error().message.find(r.message_part) != std::string::npos);
  }
}

// The schedule behind kernel mode's .kill: what it says, what it refuses,
// and that it ends the processes through the guest only when run.
namespace {
struct RecordingGuest : GuestProcesses {
  std::vector<int> ended;
  std::set<int> gone;
  Result<std::vector<GuestProcess>> list() override { return std::vector<GuestProcess>{}; }
  Result<GuestProcess> at(uint64_t) override { return make_error(3, "none"); }
  Result<GuestProcess> current(unsigned) override { return make_error(3, "none"); }
  void terminate(const GuestProcess& p, std::function<void(Status)> done,
                 std::function<void(const std::string&)>) override {
    if (gone.count(p.pid)) return done(make_error(ESRCH, "it had already gone"));
    ended.push_back(p.pid);
    done(ok_status());
  }
};
GuestProcess proc(uint64_t addr, int pid, std::string name, bool kthread = false, bool idle = false) {
  GuestProcess p;
  p.address = addr;
  p.pid = pid;
  p.name = std::move(name);
  p.kernel_thread = kthread;
  p.idle = idle;
  return p;
}
}  // namespace

TEST_CASE("termination schedule: nothing ends until the machine runs") {
  TerminationSchedule s;
  RecordingGuest guest;
  auto a = s.schedule(proc(0xffff8880041b8000, 85, "sleep"));
  REQUIRE(a);
  CHECK(*a == "Process ffff8880041b8000 (sleep, pid 85) will be terminated the next time the target runs.\n");
  auto again = s.schedule(proc(0xffff8880041b8000, 85, "sleep"));
  REQUIRE(again);
  CHECK(again->find("already scheduled") != std::string::npos);
  auto b = s.schedule(proc(0xffff888004a00000, 86, "sleep"));
  REQUIRE(b);
  CHECK(b->find("Pending terminations:") != std::string::npos);  // several pending: the list
  CHECK(guest.ended.empty());
  guest.gone.insert(86);
  std::vector<std::string> lines;
  s.run(guest, [&](const std::string& l) { lines.push_back(l); });
  CHECK(guest.ended == std::vector<int>{85});
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "Process ffff8880041b8000 (sleep, pid 85) was terminated.\n");
  CHECK(lines[1].find("was not terminated: it had already gone") != std::string::npos);
  CHECK(s.empty());
  CHECK_FALSE(s.busy());
}

TEST_CASE("termination schedule: kernel threads and idle tasks are refused with how to pick") {
  TerminationSchedule s;
  auto k = s.schedule(proc(0xffff888003f00000, 2, "kthreadd", true));
  REQUIRE_FALSE(k);
  CHECK(k.error().message.find("is a kernel thread") != std::string::npos);
  CHECK(k.error().message.find("!process 0 0") != std::string::npos);
  auto i = s.schedule(proc(0xffffffff82a1aa40, 0, "swapper/0", true, true));
  REQUIRE_FALSE(i);
  CHECK(i.error().message.find("idle task") != std::string::npos);
  CHECK(s.empty());
}

namespace {
// Answers only when told: the time between run() and the guest's answer.
struct SlowGuest : RecordingGuest {
  std::vector<std::function<void(Status)>> waiting;
  void terminate(const GuestProcess&, std::function<void(Status)> done, std::function<void(const std::string&)>) override {
    waiting.push_back(done);
  }
};
}  // namespace

TEST_CASE("termination schedule: the observer hears every process still to be ended, until the guest answers") {
  TerminationSchedule s;
  std::vector<std::vector<int>> seen;
  s.set_observer([&](const std::vector<GuestProcess>& ps) {
    std::vector<int> pids;
    for (auto& p : ps) pids.push_back(p.pid);
    seen.push_back(pids);
  });
  REQUIRE(s.schedule(proc(0xffff8880041b8000, 85, "sleep")));
  REQUIRE(s.schedule(proc(0xffff888004a00000, 86, "sleep")));
  CHECK_FALSE(s.schedule(proc(0xffff888003f00000, 2, "kthreadd", true)));  // refused: not told
  SlowGuest guest;
  s.run(guest, nullptr);
  // Started, not yet answered: still to be kept across a crash.
  REQUIRE(guest.waiting.size() == 2);
  guest.waiting[0](ok_status());
  guest.waiting[1](make_error(ESRCH, "it had already gone"));
  CHECK(seen == std::vector<std::vector<int>>{{85}, {85, 86}, {86}, {}});
}

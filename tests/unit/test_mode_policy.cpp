#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "server/mode_policy.h"

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
      // Kernel mode must never end the machine; scheduling comes with the
      // kernel-mode issue, until then a clear refusal.
      {Mode::Kernel, KillSource::PacketK, A::Refuse, "not yet supported"},
      {Mode::Kernel, KillSource::PacketVKill, A::Refuse, "not yet supported"},
      {Mode::Kernel, KillSource::MonitorKill, A::Refuse, "not yet supported"},
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
      {Mode::Kernel, Operation::Resume, true, ""},
      {Mode::Kernel, Operation::Interrupt, true, ""},
      {Mode::Kernel, Operation::WriteMemory, true, ""},
      {Mode::Kernel, Operation::WriteRegisters, true, ""},
      {Mode::Kernel, Operation::Breakpoint, true, ""},
      {Mode::Kernel, Operation::Watchpoint, true, ""},
      {Mode::Kernel, Operation::Detach, true, ""},
      {Mode::Kernel, Operation::Run, true, ""},
      {Mode::Kernel, Operation::Attach, true, ""},
      {Mode::LocalKernel, Operation::Resume, false, lk},
      {Mode::LocalKernel, Operation::Interrupt, false, lk},
      {Mode::LocalKernel, Operation::WriteMemory, false, lk},
      {Mode::LocalKernel, Operation::WriteRegisters, false, lk},
      {Mode::LocalKernel, Operation::Breakpoint, false, lk},
      {Mode::LocalKernel, Operation::Watchpoint, false, lk},
      {Mode::LocalKernel, Operation::Detach, true, ""},
      {Mode::LocalKernel, Operation::Run, false, "local kernel session"},
      {Mode::LocalKernel, Operation::Attach, false, "local kernel session"},
  };
  for (const auto& r : rows) {
    auto st = ModePolicy::allows(r.mode, r.op);
    CAPTURE(mode_name(r.mode));
    CAPTURE(static_cast<int>(r.op));
    CHECK(st.ok() == r.allowed);
    if (!r.allowed) CHECK(st.error().message.find(r.message_part) != std::string::npos);
  }
}

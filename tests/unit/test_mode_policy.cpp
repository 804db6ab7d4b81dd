#include <doctest/doctest.h>

#include "server/mode_policy.h"

using namespace dbgstub;

TEST_CASE("kill policy: user mode kills now, others never kill at once") {
  for (auto src : {KillSource::PacketK, KillSource::PacketVKill, KillSource::MonitorKill}) {
    CHECK(ModePolicy::kill(Mode::User, src).action == KillDecision::Action::KillNow);
    auto k = ModePolicy::kill(Mode::Kernel, src);
    CHECK(k.action != KillDecision::Action::KillNow);
    auto l = ModePolicy::kill(Mode::LocalKernel, src);
    CHECK(l.action == KillDecision::Action::Refuse);
    CHECK(l.message.find("local kernel") != std::string::npos);
  }
}

TEST_CASE("execution control is refused in a local kernel session only") {
  for (auto op : {Operation::Resume, Operation::Interrupt, Operation::WriteMemory, Operation::Breakpoint}) {
    CHECK(ModePolicy::allows(Mode::User, op).ok());
    CHECK(ModePolicy::allows(Mode::Kernel, op).ok());
    CHECK_FALSE(ModePolicy::allows(Mode::LocalKernel, op).ok());
  }
}

// qSupported built from what the target has (Target::capabilities(),
// issue #22): a process target's reply is what it has always been, byte for
// byte (the conformance and differential tests compare it with
// gdbserver's); a machine (a VM, the local kernel) offers none of a
// process's documents and events, which gdb would ask for and get E5f;
// and a request for a feature not offered still gets the reply it had.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <string>
#include <vector>

#include "server/gdb/dispatcher.h"
#include "targets/local_kernel/local_kernel_target.h"
#include "targets/process/child_events.h"
#include "targets/process/process_target.h"
#include "targets/vm/vm_target.h"
#include "tests/unit/fake_process_target.h"

using namespace dbgstub;

namespace {

// What gdb 13 sends on connecting.
const char* kGdbSupported =
    "qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;exec-events+;"
    "vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386";

// Features of a process that a machine has not.
const std::vector<std::string> kProcessOnly = {
    "qXfer:exec-file:read+", "qXfer:auxv:read+",        "qXfer:libraries-svr4:read+", "qXfer:siginfo:read+",
    "qXfer:siginfo:write+",  "fork-events+",            "vfork-events+",              "exec-events+",
    "QDisableRandomization+", "QEnvironmentHexEncoded+", "QSetWorkingDir+",            "QCatchSyscalls+"};

struct Session {
  explicit Session(Target& t)
      : dispatcher(t, DispatcherConfig{},
                   SessionHooks{[this](std::string p) { sent.push_back(std::move(p)); }, {}, {}, {}, {}, {}}) {}
  std::vector<std::string> sent;  // before the dispatcher: its hook writes here
  Dispatcher dispatcher;
  // The last reply (console output, if any, comes before it).
  std::string request(const std::string& p) {
    sent.clear();
    dispatcher.handle_packet(p);
    REQUIRE_FALSE(sent.empty());
    return sent.back();
  }
};

std::vector<std::string> features(const std::string& reply) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= reply.size()) {
    std::size_t end = reply.find(';', start);
    if (end == std::string::npos) end = reply.size();
    out.push_back(reply.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool offers(const std::string& reply, const std::string& feature) {
  for (auto& f : features(reply))
    if (f == feature) return true;
  return false;
}

void check_offers_nothing_of_a_process(const std::string& reply) {
  for (auto& f : kProcessOnly) {
    INFO("offered: " << f << " in " << reply);
    CHECK_FALSE(offers(reply, f));
  }
  // What every target has is still offered.
  for (const char* f : {"PacketSize=20000", "qXfer:features:read+", "qXfer:threads:read+", "QStartNoAckMode+",
                        "vContSupported+", "multiprocess+", "swbreak+", "hwbreak+"})
    CHECK(offers(reply, f));
}

// A kernel-mode target as the dispatcher sees a VM: no optional method,
// no launcher; with `guest`, the guest's processes.
class FakeMachine : public testing::FakeProcessTarget {
 public:
  GuestProcesses* guest = nullptr;
  Mode mode() const override { return Mode::Kernel; }
  GuestProcesses* guest_processes() override { return guest; }
};

class NoGuestProcesses : public GuestProcesses {
 public:
  Result<std::vector<GuestProcess>> list() override { return std::vector<GuestProcess>{}; }
  Result<GuestProcess> at(uint64_t) override { return make_error(3, "none"); }
  Result<GuestProcess> current(unsigned) override { return make_error(3, "none"); }
  void terminate(const GuestProcess&, std::function<void(Status)> done,
                 std::function<void(const std::string&)>) override {
    done(make_error(3, "none"));
  }
};

}  // namespace

TEST_CASE("qSupported: the process target's reply is unchanged, byte for byte") {
  asio::io_context io;
  ChildEvents events(io);
  ProcessTarget target(io, events);
  Session s(target);
  CHECK(s.request(kGdbSupported) ==
        "PacketSize=20000;QPassSignals+;QProgramSignals+;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
        "qXfer:libraries-svr4:read+;qXfer:exec-file:read+;qXfer:threads:read+;qXfer:siginfo:read+;"
        "qXfer:osdata:read+;QDisableRandomization+;QEnvironmentHexEncoded+;QEnvironmentUnset+;"
        "QEnvironmentReset+;QSetWorkingDir+;vContSupported+;QThreadSuffixSupported+;QListThreadsInStopReply+;"
        "QNonStop+;QThreadEvents+;multiprocess+;fork-events+;vfork-events+;exec-events+;swbreak+;hwbreak+;"
        "ConditionalBreakpoints+;BreakpointCommands+;qXfer:siginfo:write+;QCatchSyscalls+");
  CHECK(s.request("vCont?") == "vCont;c;C;s;S;t;r");
  // lldb's offer (none): what depends on the client's offer is left out.
  Session lldb(target);
  CHECK(lldb.request("qSupported:xmlRegisters=i386,arm,mips") ==
        "PacketSize=20000;QPassSignals+;QProgramSignals+;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
        "qXfer:libraries-svr4:read+;qXfer:exec-file:read+;qXfer:threads:read+;qXfer:siginfo:read+;"
        "qXfer:osdata:read+;QDisableRandomization+;QEnvironmentHexEncoded+;QEnvironmentUnset+;"
        "QEnvironmentReset+;QSetWorkingDir+;vContSupported+;QThreadSuffixSupported+;QListThreadsInStopReply+;"
        "QNonStop+;QThreadEvents+;ConditionalBreakpoints+;BreakpointCommands+;qXfer:siginfo:write+;"
        "QCatchSyscalls+");
}

TEST_CASE("qSupported: a VM offers none of a process's documents or events") {
  asio::io_context io;
  // What a VM can do, asked without connecting: nothing optional.
  VmTarget vm(io, "127.0.0.1", 9);
  TargetCapabilities caps = vm.capabilities();
  CHECK_FALSE((caps.exec_file || caps.auxv || caps.libraries_svr4 || caps.siginfo || caps.osdata ||
               caps.fork_events || caps.exec_events || caps.catch_syscalls || caps.range_step));
  CHECK(vm.launcher() == nullptr);
  // The dispatcher's reply for such a machine (a fake, reachable).
  FakeMachine target;
  Session s(target);
  std::string reply = s.request(kGdbSupported);
  check_offers_nothing_of_a_process(reply);
  CHECK_FALSE(offers(reply, "qXfer:osdata:read+"));  // no guest view: no "processes" document
}

TEST_CASE("qSupported: a VM that cannot be reached says so in the reply, naming its gdbstub") {
  asio::io_context io;
  VmTarget target(io, "127.0.0.1", 9);  // nothing listens on the discard port
  Session s(target);
  std::string reply = s.request(kGdbSupported);
  CHECK(reply.rfind("E.", 0) == 0);
  CHECK(reply.find("gdbstub") != std::string::npos);
  CHECK(reply.find("127.0.0.1:9") != std::string::npos);
}

TEST_CASE("qSupported: a VM with the guest's processes offers their osdata document") {
  NoGuestProcesses guest;
  FakeMachine target;
  target.guest = &guest;
  Session s(target);
  std::string reply = s.request(kGdbSupported);
  check_offers_nothing_of_a_process(reply);
  CHECK(offers(reply, "qXfer:osdata:read+"));
  CHECK(s.request("qXfer:osdata:read:processes:0,fff").rfind("l<osdata type=\"processes\">", 0) == 0);
}

TEST_CASE("qSupported: the local kernel offers its osdata and nothing of a process") {
  LocalKernelTarget::Paths paths;
  paths.kallsyms = paths.kcore = paths.proc = paths.btf = "/nonexistent";
  LocalKernelTarget target(paths);
  Session s(target);
  std::string reply = s.request(kGdbSupported);
  check_offers_nothing_of_a_process(reply);
  CHECK(offers(reply, "qXfer:osdata:read+"));
  CHECK(s.request("vCont?") == "vCont;c;C;s;S;t");
}

TEST_CASE("qSupported: what a target lacks, asked for anyway, gets the reply it always had") {
  FakeMachine target;
  Session s(target);
  s.request(kGdbSupported);
  CHECK(s.request("qXfer:exec-file:read:7:0,fff") == "E5f");
  CHECK(s.request("qXfer:auxv:read::0,fff") == "E5f");
  CHECK(s.request("qXfer:libraries-svr4:read::0,fff") == "E5f");
  CHECK(s.request("qXfer:siginfo:read::0,fff") == "E5f");
  CHECK(s.request("qXfer:osdata:read:processes:0,fff") == "E5f");
  CHECK(s.request("QCatchSyscalls:1") == "E01");
  CHECK(s.request("QDisableRandomization:1") == "OK");
  CHECK(s.request("QSetWorkingDir:") == "OK");
}

TEST_CASE("qSupported: fork and exec events are agreed only with a target that reports them") {
  testing::FakeProcessTarget without;
  Session a(without);
  std::string reply = a.request(kGdbSupported);
  CHECK_FALSE(offers(reply, "fork-events+"));
  CHECK_FALSE(offers(reply, "vfork-events+"));
  CHECK_FALSE(offers(reply, "exec-events+"));

  testing::FakeProcessTarget with;
  with.caps.fork_events = with.caps.exec_events = true;
  Session b(with);
  reply = b.request(kGdbSupported);
  CHECK(offers(reply, "fork-events+"));
  CHECK(offers(reply, "vfork-events+"));
  CHECK(offers(reply, "exec-events+"));
  // Still only when the client offers them.
  Session c(with);
  CHECK_FALSE(offers(c.request("qSupported:multiprocess+"), "fork-events+"));
}

// The GDB dispatcher's handling of a ^C and of vAttach against a fake
// process target that runs and stops when told: a ^C whose stop another
// event overtook is not lost (gdb.threads/detach-step-over's "interrupt"),
// and a non-stop vAttach while other threads run waits for them to stop
// (its "seen all stops").
#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <vector>

#include "server/gdb/dispatcher.h"
#include "tests/unit/fake_process_target.h"

using namespace dbgstub;

namespace {

class FakeRunner : public testing::FakeProcessTarget, public ProcessLauncher {
 public:
  std::vector<int> attached;
  bool attached_while_running = false;

  FakeRunner() { listed = {{7, 7}, {7, 8}}; }
  ProcessLauncher* launcher() override { return this; }
  Status launch(const LaunchSpec&) override { return ok_status(); }
  Status attach(int pid) override {
    attached.push_back(pid);
    attached_while_running = attached_while_running || is_running;
    is_running = true;  // stopping the new process
    listed.push_back({pid, pid});
    return ok_status();
  }
};

struct Harness {
  FakeRunner target;
  std::vector<std::string> sent, notified;
  Dispatcher dispatcher;
  explicit Harness(DispatcherConfig config = {})
      : dispatcher{target, config,
                   SessionHooks{[this](std::string p) { sent.push_back(std::move(p)); }, {}, {}, {}, {},
                                [this](std::string p) { notified.push_back(std::move(p)); }}} {}
  std::string request(const std::string& p) {
    sent.clear();
    dispatcher.handle_packet(p);
    REQUIRE(sent.size() == 1);
    return sent.back();
  }
  // The target stops with `ev`: what the dispatcher sends.
  std::vector<std::string> stop(StopEvent ev) {
    sent.clear();
    target.is_running = false;
    dispatcher.handle_stop(ev);
    return sent;
  }
};

StopEvent breakpoint_hit(int tid) {
  StopEvent ev;
  ev.thread = {7, tid};
  ev.signal = SIGTRAP;
  ev.reason = StopEvent::Reason::SwBreak;
  return ev;
}

// The stop that answers a ^C: the target's interrupt of `t`, with SIGINT.
StopEvent interrupt_stop(ThreadRef t) {
  StopEvent ev;
  ev.thread = t;
  ev.signal = SIGINT;
  ev.reason = StopEvent::Reason::Interrupt;
  return ev;
}

}  // namespace

TEST_CASE("dispatcher: a ^C overtaken by a breakpoint stop is reported at the next resume") {
  Harness h;
  h.request("qSupported:multiprocess+;swbreak+");
  h.dispatcher.handle_packet("vCont;c");
  REQUIRE(h.target.is_running);
  h.dispatcher.handle_interrupt();
  CHECK(h.target.interrupts == 1);
  // Another thread's breakpoint hit (maybe one whose condition is false,
  // that gdb steps over at once) is the stop: the ^C isn't answered yet.
  auto replies = h.stop(breakpoint_hit(8));
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].rfind("T05", 0) == 0);
  // gdb resumes; the SIGINT gdbserver would have queued stops the process
  // at once, in the one thread resumed (a stopped thread takes no signal:
  // gdb, stepping 7.8 over a breakpoint, expects no other thread's event).
  h.sent.clear();
  h.dispatcher.handle_packet("vCont;s:p7.8");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0].rfind("T02", 0) == 0);
  CHECK(h.sent[0].find("thread:p7.8;") != std::string::npos);
  CHECK(h.target.resumes.size() == 1);  // not resumed for it
  // Answered: the next resume runs.
  h.sent.clear();
  h.dispatcher.handle_packet("vCont;c");
  CHECK(h.sent.empty());
  CHECK(h.target.resumes.size() == 2);
}

TEST_CASE("dispatcher: a ^C answered by its own stop leaves nothing pending") {
  Harness h;
  h.request("qSupported:multiprocess+;swbreak+");
  h.dispatcher.handle_packet("vCont;c");
  h.dispatcher.handle_interrupt();
  auto replies = h.stop(interrupt_stop({7, 7}));
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].rfind("T02", 0) == 0);
  h.sent.clear();
  h.dispatcher.handle_packet("vCont;c");
  CHECK(h.sent.empty());
  CHECK(h.target.resumes.size() == 2);
}

TEST_CASE("dispatcher: non-stop vAttach while other threads run waits until they are stopped") {
  DispatcherConfig config;
  config.multi = true;
  config.allow_attach = true;
  Harness h(config);
  h.request("qSupported:multiprocess+;swbreak+");
  CHECK(h.request("QNonStop:1") == "OK");
  CHECK(h.request("vCont;c") == "OK");
  REQUIRE(h.target.is_running);
  // The attach stop is the whole target's: held, and the target stopped.
  h.sent.clear();
  h.dispatcher.handle_packet("vAttach;2a");
  CHECK(h.sent.empty());
  CHECK(h.target.attached.empty());
  CHECK(h.target.interrupts == 1);
  h.stop(interrupt_stop({7, 7}));  // the held vAttach goes ahead now
  REQUIRE(h.target.attached.size() == 1);
  CHECK(h.target.attached[0] == 42);
  CHECK_FALSE(h.target.attached_while_running);
  // Its stop: "OK", and the threads gdb left running run again.
  StopEvent start;
  start.thread = {42, 42};
  start.signal = SIGTRAP;
  start.reason = StopEvent::Reason::Start;
  auto replies = h.stop(start);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0] == "OK");
  CHECK(h.target.is_running);
}

TEST_CASE("dispatcher: a ^C's SIGINT is the last attached process's, as gdbserver's process-group SIGINT") {
  Harness h;
  h.target.listed = {{7, 7}, {7, 8}, {9, 9}, {9, 10}};  // 9: attached last
  h.request("qSupported:multiprocess+;swbreak+");
  h.dispatcher.handle_packet("vCont;c");
  h.dispatcher.handle_interrupt();
  // Its own stop names process 9's leader, whichever thread the target
  // picked.
  auto replies = h.stop(interrupt_stop({7, 8}));
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].rfind("T02", 0) == 0);
  CHECK(replies[0].find("thread:p9.9;") != std::string::npos);

  // Overtaken by process 7's breakpoint hit: gdb steps that thread alone
  // (process 9 isn't resumed, so no SIGINT yet), then continues all.
  h.dispatcher.handle_packet("vCont;c");
  h.dispatcher.handle_interrupt();
  h.stop(breakpoint_hit(8));
  h.sent.clear();
  auto resumes = h.target.resumes.size();
  h.dispatcher.handle_packet("vCont;s:p7.8");
  CHECK(h.sent.empty());
  CHECK(h.target.resumes.size() == resumes + 1);
  replies = h.stop(breakpoint_hit(8));
  h.sent.clear();
  h.dispatcher.handle_packet("vCont;c");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0].rfind("T02", 0) == 0);
  CHECK(h.sent[0].find("thread:p9.9;") != std::string::npos);
  CHECK(h.target.resumes.size() == resumes + 1);
}

TEST_CASE("dispatcher: a ^C while only another process's thread steps waits for that process's next resume") {
  Harness h;
  h.target.listed = {{7, 7}, {7, 8}, {9, 9}, {9, 10}};  // 9: attached last
  h.request("qSupported:multiprocess+;swbreak+");
  h.dispatcher.handle_packet("vCont;s:p7.8");  // gdb steps 7.8 over a breakpoint
  h.dispatcher.handle_interrupt();
  CHECK(h.target.interrupts == 0);  // the step ends as it would have
  StopEvent step;
  step.thread = {7, 8};
  step.signal = SIGTRAP;
  step.reason = StopEvent::Reason::Step;
  auto replies = h.stop(step);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].rfind("T05", 0) == 0);
  CHECK(replies[0].find("thread:p7.8;") != std::string::npos);
  h.sent.clear();
  auto resumes = h.target.resumes.size();
  h.dispatcher.handle_packet("vCont;c");
  REQUIRE(h.sent.size() == 1);
  CHECK(h.sent[0].rfind("T02", 0) == 0);
  CHECK(h.sent[0].find("thread:p9.9;") != std::string::npos);
  CHECK(h.target.resumes.size() == resumes);
}

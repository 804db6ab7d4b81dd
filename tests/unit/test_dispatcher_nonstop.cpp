// Non-stop mode (server/gdb/non_stop.cpp) against a fake all-stop target whose
// thread list and stops the test controls.
#include <doctest/doctest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "server/gdb/dispatcher.h"
#include "tests/unit/fake_process_target.h"

using namespace dbgstub;

namespace {

class FakeTarget : public testing::FakeProcessTarget {
 public:
  std::vector<int> pids{7};
  std::vector<int> read_from;  // the pid of each memory read

  std::vector<ProcessInfo> processes() const override {
    std::vector<ProcessInfo> out;
    for (int pid : pids) {
      ProcessInfo p;
      p.pid = pid;
      out.push_back(p);
    }
    return out;
  }
  std::optional<StopEvent> held;  // an event the target keeps for its thread
  std::optional<StopEvent> take_pending_stop(ThreadRef t) override {
    if (!held || !(held->thread == t)) return std::nullopt;
    auto ev = held;
    held.reset();
    // A fork child is listed once its fork is out (ProcessTarget hides it
    // while the fork event is held).
    if (ev->reason == StopEvent::Reason::Fork) listed.push_back(ev->child);
    return ev;
  }
  Result<std::string> read_memory(int pid, uint64_t, std::size_t len) override {
    read_from.push_back(pid);
    return std::string(len, '\0');
  }
};

struct Harness {
  FakeTarget target;
  std::vector<std::string> sent, notes;
  Dispatcher dispatcher{target, DispatcherConfig{},
                        SessionHooks{[this](std::string p) { sent.push_back(std::move(p)); }, {}, {}, {}, {},
                                     [this](std::string n) { notes.push_back(std::move(n)); }}};
  std::string request(const std::string& p) {
    sent.clear();
    dispatcher.handle_packet(p);
    REQUIRE(sent.size() == 1);
    return sent.back();
  }
  void stop(const StopEvent& ev) {
    target.is_running = false;
    target.last = ev;
    dispatcher.handle_stop(ev);
  }
  // gdb connecting in non-stop mode with `features` (qSupported) to a
  // target stopped at 7.7's start, and taking every stop there is.
  void start_non_stop(const std::string& features) {
    StopEvent start;
    start.thread = {7, 7};
    start.signal = SIGTRAP;
    target.last = start;
    if (!features.empty()) request("qSupported:" + features);
    CHECK(request("QNonStop:1") == "OK");
    request("?");
    while (request("vStopped") != "OK") {
    }
  }
};

bool resumes_pid(const std::vector<ResumeAction>& actions, int pid) {
  for (auto& a : actions)
    if (!a.thread || a.thread->pid == pid) return true;
  return false;
}

}  // namespace

TEST_CASE("non-stop: a fork child listed before its fork stop came out stays stopped") {
  // The process target posts a fork event kept pending while another
  // thread's stop was reported; until it comes out, the child may show in
  // the thread list, and a vCont then placed it as running. The fork stop
  // must leave it stopped (gdb detaches it, or resumes it itself): resumed,
  // it ran to its exit before gdb's D;pid (gdb: "Can't detach process",
  // then an internal error over the exit of a process it never knew).
  Harness h;
  StopEvent start;
  start.thread = {7, 7};
  start.signal = SIGTRAP;
  h.target.last = start;
  CHECK(h.request("QNonStop:1") == "OK");
  CHECK(h.request("?").rfind("T05", 0) == 0);
  CHECK(h.request("vStopped") == "OK");
  CHECK(h.request("vCont;c") == "OK");
  REQUIRE(h.target.resumes.size() == 1);
  CHECK(h.target.is_running);

  h.target.listed.push_back({8, 8});               // the child, its fork stop on the way
  CHECK(h.request("vCont;c:p7.-1") == "OK");       // gdb resuming the parent's threads
  StopEvent fork;
  fork.thread = {7, 7};
  fork.signal = SIGTRAP;
  fork.reason = StopEvent::Reason::Fork;
  fork.child = {8, 8};
  h.target.resumes.clear();
  h.stop(fork);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0].rfind("Stop:T05", 0) == 0);
  for (auto& r : h.target.resumes) CHECK_FALSE(resumes_pid(r, 8));
}

TEST_CASE("non-stop: memory of the selected thread's process after that thread exited") {
  // gdb.threads/access-mem-running-thread-exit: two processes run, gdb
  // selects a thread of the second (Hg) and reads its memory while its
  // threads come and go. Once that thread had exited, memory requests went
  // to the first process (gdb read back a value it had not written).
  Harness h;
  h.target.pids = {7, 8};
  h.target.listed = {{7, 7}, {8, 8}, {8, 9}};
  CHECK(h.request("QNonStop:1") == "OK");
  CHECK(h.request("Hgp8.9") == "OK");
  CHECK(h.request("m1000,4") == "00000000");
  h.target.listed = {{7, 7}, {8, 8}};  // thread 9 exits
  CHECK(h.request("m1000,4") == "00000000");
  CHECK(h.request("M1000,1:2a") == "OK");
  CHECK(h.target.read_from == std::vector<int>{8, 8});
}

TEST_CASE("non-stop: a wildcard vCont leaves alone the threads whose stops gdb has not taken") {
  // gdb.threads/pending-fork-event-detach-ns: gdb sent "vCont;C14:p..;c"
  // while a fork's %Stop was on its way; the "c" resumed the fork child,
  // which exited before gdb's D;pid ("Can't detach process", then an
  // internal error over the W of a process gdb never knew). gdbserver
  // leaves such threads and children alone (in_queued_stop_replies).
  Harness h;
  h.target.listed = {{7, 7}, {7, 9}};
  h.start_non_stop("multiprocess+;fork-events+;vfork-events+");
  CHECK(h.request("vCont;c") == "OK");
  h.target.listed = {{7, 7}, {7, 9}, {8, 8}};  // the child, now reported
  StopEvent fork;
  fork.thread = {7, 7};
  fork.signal = SIGTRAP;
  fork.reason = StopEvent::Reason::Fork;
  fork.child = {8, 8};
  h.stop(fork);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0].find("fork:p8.8") != std::string::npos);
  // gdb has not read the notification yet: its next resume is a wildcard.
  h.target.resumes.clear();
  h.target.is_running = false;
  CHECK(h.request("vCont;c") == "OK");
  for (auto& r : h.target.resumes) {
    CHECK_FALSE(resumes_pid(r, 8));
    for (auto& a : r) {
      INFO("note: " << h.notes[0] << " resumed tid " << (a.thread ? a.thread->tid : -1));
      CHECK_FALSE((a.thread && a.thread->tid == 7));  // its stop is queued too
    }
  }
  CHECK(h.request("vStopped") == "OK");
}

namespace {

// A non-stop session whose threads 7.7, 7.8 and 7.9 all run for gdb, with
// thread events on, as gdb has them while it stops every thread.
void run_three_threads_with_thread_events(Harness& h) {
  h.target.listed = {{7, 7}, {7, 8}, {7, 9}};
  CHECK(h.request("qSupported:multiprocess+").find("QThreadEvents+") != std::string::npos);
  h.start_non_stop("");
  CHECK(h.request("vCont;c") == "OK");
  CHECK(h.target.is_running);
  CHECK(h.request("QThreadEvents:1") == "OK");
}

}  // namespace

TEST_CASE("non-stop: a thread that exited before gdb's vCont;t for it is reported gone") {
  // gdb.threads/forking-threads-plus-breakpoint: gdb stops every thread
  // (a breakpoint to step over) and asks each one it believes runs to stop;
  // one had just returned from its thread function. No stop could come for
  // it and none was reported, so gdb waited until the test timed out. gdb
  // turns thread events on for this (QThreadEvents:1): the exit is the
  // answer, "w" as from gdbserver.
  Harness h;
  run_three_threads_with_thread_events(h);
  h.target.listed = {{7, 7}, {7, 9}};  // thread 8 exits
  CHECK(h.request("vCont;t:p7.8") == "OK");
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0] == "Stop:w00;p7.8");
  CHECK(h.request("vStopped") == "OK");
}

TEST_CASE("non-stop: a thread that exits after gdb asked it to stop is reported gone, not stopped") {
  Harness h;
  run_three_threads_with_thread_events(h);
  CHECK(h.request("vCont;t:p7.9") == "OK");  // the target is interrupted for it
  h.target.listed = {{7, 7}, {7, 8}};        // and thread 9 exits meanwhile
  StopEvent ours;
  ours.thread = {7, 7};
  ours.reason = StopEvent::Reason::Interrupt;
  h.stop(ours);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0] == "Stop:w00;p7.9");
  CHECK(h.request("vStopped") == "OK");
}

TEST_CASE("non-stop: thread exits are reported only while gdb asks for them, and not for a whole process") {
  Harness h;
  run_three_threads_with_thread_events(h);
  CHECK(h.request("QThreadEvents:0") == "OK");
  h.target.listed = {{7, 7}, {7, 9}};  // thread 8 exits unannounced, as with gdbserver
  CHECK(h.request("vCont;t:p7.9") == "OK");
  CHECK(h.notes.empty());
  CHECK(h.request("QThreadEvents:1") == "OK");
  h.target.listed = {};  // the process ends: its exit says so, no "w" per thread
  StopEvent exited;
  exited.kind = StopEvent::Kind::Exited;
  exited.thread = {7, 7};
  h.stop(exited);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0].rfind("Stop:W00", 0) == 0);
}

TEST_CASE("all-stop: thread events are refused (no stop reports a thread's exit there)") {
  Harness h;
  CHECK(h.request("QThreadEvents:1").rfind("E", 0) == 0);
  CHECK(h.request("QThreadEvents:0") == "OK");
}

TEST_CASE("non-stop: a process that ended while another's exit was reported is asked for its exit") {
  // gdb.threads/fork-plus-threads (detach-on-fork off): two fork children
  // exit at once. The process target reports the first exit and holds the
  // second as the answer to the next resume covering that process; its
  // threads are gone from the list, so resuming what gdb believes runs
  // never covered it, and gdb waited for that exit until its timeout.
  Harness h;
  h.target.pids = {7, 8, 9};
  h.target.listed = {{7, 7}, {8, 8}, {9, 9}};
  h.start_non_stop("multiprocess+;fork-events+");
  CHECK(h.request("vCont;c") == "OK");

  h.target.pids = {7};
  h.target.listed = {{7, 7}};  // 8 and 9 ended; 9's exit is reported
  StopEvent exit9;
  exit9.kind = StopEvent::Kind::Exited;
  exit9.thread = {9, 9};
  h.target.resumes.clear();
  h.stop(exit9);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0] == "Stop:W00;process:9");
  REQUIRE(h.target.resumes.size() == 1);
  bool asks_8 = false;
  for (auto& a : h.target.resumes[0])
    if (a.thread && a.thread->pid == 8 && a.thread->tid == -1) asks_8 = true;
  CHECK(asks_8);

  StopEvent exit8 = exit9;
  exit8.thread = {8, 8};
  h.target.resumes.clear();
  h.stop(exit8);
  CHECK(h.request("vStopped") == "W00;process:8");
  CHECK(h.request("vStopped") == "OK");
  // Asked once: the next resume is for the threads that run.
  REQUIRE(h.target.resumes.size() == 1);
  for (auto& a : h.target.resumes[0]) CHECK((a.thread && a.thread->pid == 7));
}

TEST_CASE("non-stop: resuming a process that ended while stopped asks for its exit") {
  // Process 8, stopped for gdb, is killed while 7 runs. The target holds
  // that exit for a resume that covers 8 (gdbserver keeps an exit of a
  // thread not resumed, too); 8's threads are gone from the list, so gdb's
  // vCont for 8 covers nothing unless the exit is asked for.
  Harness h;
  h.target.pids = {7, 8};
  h.target.listed = {{7, 7}, {8, 8}};
  h.start_non_stop("multiprocess+");  // 7 stopped, 8 running
  StopEvent stopped;
  stopped.thread = {8, 8};
  stopped.reason = StopEvent::Reason::Interrupt;
  CHECK(h.request("vCont;t:p8.8") == "OK");
  h.stop(stopped);
  CHECK(h.request("vCont;c:p7.7") == "OK");
  REQUIRE_FALSE(h.target.resumes.empty());
  CHECK_FALSE(resumes_pid(h.target.resumes.back(), 8));
  CHECK(h.target.is_running);

  h.target.pids = {7};
  h.target.listed = {{7, 7}};  // 8 ended; its exit is held
  h.target.resumes.clear();
  int interrupts = h.target.interrupts;
  CHECK(h.request("vCont;c:p8.8") == "OK");
  CHECK(h.target.interrupts == interrupts + 1);  // the target runs: stopped to change what runs
  stopped.thread = {7, 7};
  h.stop(stopped);
  REQUIRE(h.target.resumes.size() == 1);
  bool asks_8 = false;
  for (auto& a : h.target.resumes[0])
    if (a.thread && a.thread->pid == 8 && a.thread->tid == -1) asks_8 = true;
  CHECK(asks_8);
  CHECK(resumes_pid(h.target.resumes[0], 7));
}

TEST_CASE("non-stop: a thread asked to stop whose step finished meanwhile reports the step") {
  // gdb.threads/next-fork-other-thread (vfork, non-stop): 7.7 does a
  // displaced step of a `call`; another thread vforks and gdb stops every
  // thread. The step finished while the target stopped for the other
  // thread, so the target holds it. Reported as a plain stop (T00), gdb
  // takes the displaced instruction for not executed and never fixes the
  // return address the call pushed; `next` then stops inside the callee.
  Harness h;
  h.target.listed = {{7, 7}, {7, 8}};
  h.start_non_stop("multiprocess+");  // 7.7 stopped, 7.8 running
  CHECK(h.request("vCont;s:p7.7") == "OK");
  CHECK(h.target.is_running);
  CHECK(h.request("vCont;t:p7.7") == "OK");
  CHECK(h.target.interrupts >= 1);

  StopEvent step;
  step.thread = {7, 7};
  step.signal = SIGTRAP;
  step.reason = StopEvent::Reason::Step;
  h.target.held = step;
  StopEvent ours;
  ours.thread = {7, 8};
  ours.reason = StopEvent::Reason::Interrupt;
  h.notes.clear();
  h.stop(ours);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0].rfind("Stop:T05", 0) == 0);
  CHECK(h.notes[0].find("thread:p7.7;") != std::string::npos);
  CHECK_FALSE(h.target.held);
  CHECK(h.request("vStopped") == "OK");
}

TEST_CASE("non-stop: a fork held for a thread gdb asks to stop is reported, and its child stays stopped") {
  // gdb.threads/next-fork-other-thread (fork, target-non-stop): gdb stops
  // every thread; one had forked while another's event was reported. Its
  // fork stop is the answer; the child, listed from then on, must not be
  // taken for a new running thread (it ran to its exit before gdb's D;pid,
  // and gdb crashed on the exit of a process it did not know).
  Harness h;
  h.target.listed = {{7, 7}, {7, 8}};
  h.start_non_stop("multiprocess+;fork-events+");  // 7.7 stopped, 7.8 running
  StopEvent fork;
  fork.thread = {7, 8};
  fork.signal = SIGTRAP;
  fork.reason = StopEvent::Reason::Fork;
  fork.child = {9, 9};
  h.target.held = fork;
  CHECK(h.request("vCont;t:p7.8") == "OK");
  StopEvent ours;
  ours.thread = {7, 8};
  ours.reason = StopEvent::Reason::Interrupt;
  h.notes.clear();
  h.target.resumes.clear();
  h.stop(ours);
  REQUIRE(h.notes.size() == 1);
  CHECK(h.notes[0].find("fork:p9.9;") != std::string::npos);
  CHECK(h.notes[0].find("thread:p7.8;") != std::string::npos);
  CHECK(h.request("vStopped") == "OK");
  CHECK(h.request("vCont;c:p7.7") == "OK");
  REQUIRE_FALSE(h.target.resumes.empty());
  for (auto& r : h.target.resumes) CHECK_FALSE(resumes_pid(r, 9));
}

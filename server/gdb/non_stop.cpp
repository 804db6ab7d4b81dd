// Non-stop mode over the all-stop process target: see non_stop.h.
#include <signal.h>
#include <spdlog/spdlog.h>

#include "protocol/rsp/reply.h"
#include "server/gdb/dispatcher.h"
#include "server/mode_policy.h"

namespace dbgstub {
namespace {

using Key = NonStopView::Key;

// The action of a vCont that applies to thread t: its own, then its
// process's (pPID.-1), then the default one; as the target chooses.
const ResumeAction* action_for(const std::vector<ResumeAction>& actions, ThreadRef t) {
  for (auto& a : actions)
    if (a.thread && a.thread->tid == t.tid && (a.thread->pid <= 0 || a.thread->pid == t.pid)) return &a;
  for (auto& a : actions) {
    if (a.thread && a.thread->tid <= 0 && a.thread->pid == t.pid) return &a;
    if (!a.thread) return &a;
  }
  return nullptr;
}

// "pPID.TID" in a stop reply (hex), after "thread:" / "fork:" / "vfork:".
std::optional<Key> parse_ptid(std::string_view v) {
  if (v.empty() || v[0] != 'p') return std::nullopt;
  auto dot = v.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto hex = [](std::string_view h) {
    int n = 0;
    for (char c : h) n = n * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    return n;
  };
  return Key{hex(v.substr(1, dot - 1)), hex(v.substr(dot + 1))};
}

}  // namespace

// Threads whose stop gdb has not taken yet (the queue), and the pids of
// the children of fork stops it has not taken: a wildcard resume leaves
// them alone, as gdbserver's in_queued_stop_replies. gdb may send "vCont;c"
// before it reads a %Stop already on the wire: the child of that fork
// would run (to its exit, before gdb's D;pid), the stopped thread too.
void Dispatcher::ns_queued(std::set<Key>& threads, std::set<int>& children) const {
  for (const std::string& r : ns_.queue) {
    if (r.size() < 3 || r[0] != 'T') continue;  // W/X: no thread to leave alone
    std::string_view rest = std::string_view(r).substr(3);  // after "TAA"
    while (!rest.empty()) {
      auto semi = rest.find(';');
      std::string_view field = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      auto colon = field.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = field.substr(0, colon), value = field.substr(colon + 1);
      auto k = parse_ptid(value);
      if (!k) continue;
      if (name == "thread") threads.insert(*k);
      if (name == "fork" || name == "vfork") children.insert(k->first);
    }
  }
}

// A packet that needs every thread stopped (detach; attach, whose stop is
// the whole target's) waits while the target runs; so do the packets after
// it, to keep their order.
bool Dispatcher::ns_hold(std::string_view payload, const Req& req) {
  bool needs_stopped = std::holds_alternative<rsp::Detach>(req) || std::holds_alternative<rsp::VAttach>(req);
  if (ns_.held.empty() && !(needs_stopped && target_.running())) return false;
  ns_.held.emplace_back(payload);
  if (target_.running() && !ns_.interrupting) {
    ns_.interrupting = true;
    target_.interrupt();  // may report the stop (and replay) at once
  }
  return true;
}

std::string Dispatcher::ns_vcont(const std::vector<ResumeAction>& actions) {
  // Threads made since the last stop (gdb may name them from the list).
  ns_place_new_threads(nullptr);
  std::set<Key> queued;
  std::set<int> queued_children;
  ns_queued(queued, queued_children);
  for (ThreadRef t : target_.threads()) {
    const ResumeAction* chosen = action_for(actions, t);
    if (!chosen) continue;
    Key k = NonStopView::key(t);
    bool wildcard = !chosen->thread || chosen->thread->tid <= 0;
    if (wildcard && (queued.count(k) || queued_children.count(t.pid))) continue;
    ns_.known.insert(k);
    auto it = ns_.running.find(k);
    if (chosen->kind == ResumeAction::Kind::Stop) {
      if (it != ns_.running.end()) ns_.stop_requested.insert(k);
      continue;
    }
    if (it != ns_.running.end()) {
      it->second.frozen = false;  // already running for gdb: nothing to change
      continue;
    }
    ResumeAction a = *chosen;
    a.thread = t;
    ns_.running[k] = {a, false};
  }
  // A process gdb resumes that has no thread left ended while stopped (for
  // gdb); the target holds that exit for a resume covering it, as
  // gdbserver keeps an exit of a thread not resumed: ask for it.
  std::set<int> live_pids;
  for (ThreadRef t : target_.threads()) live_pids.insert(t.pid);
  for (auto& a : actions)
    if (a.thread && a.thread->pid > 0 && a.kind != ResumeAction::Kind::Stop && !live_pids.count(a.thread->pid))
      ns_.exits_owed.insert(a.thread->pid);
  ns_reconcile();
  return rsp::reply_ok();
}

// Brings the target in line with gdb's view: threads gdb asked to stop are
// reported stopped, and every thread gdb believes runs is running. The
// target can only change what runs while stopped, so a change while it
// runs stops it first; ns_handle_stop comes back here.
void Dispatcher::ns_reconcile() {
  ns_drop_gone_threads();

  // A frozen thread is stopped already: asked to stop, it is reported now.
  std::vector<Key> frozen_asked;
  for (const Key& k : ns_.stop_requested) {
    auto r = ns_.running.find(k);
    if (r != ns_.running.end() && r->second.frozen) frozen_asked.push_back(k);
  }
  for (const Key& k : frozen_asked) {
    ns_.stop_requested.erase(k);
    if (ns_.running.erase(k)) ns_report_requested_stop(k);
  }

  bool wants_run = false, missing = false;
  for (auto& [k, r] : ns_.running) {
    if (r.frozen) continue;
    wants_run = true;
    if (!ns_.resumed.count(k)) missing = true;
  }
  if (target_.running()) {
    bool change = missing || !ns_.stop_requested.empty() || !wants_run || !ns_.exits_owed.empty();
    if (change && !ns_.interrupting) {
      ns_.interrupting = true;
      target_.interrupt();  // may report the stop (and come back here) at once
    }
    return;
  }
  ns_answer_stop_requests();

  std::vector<ResumeAction> actions;
  ns_.resumed.clear();
  for (auto& [k, r] : ns_.running) {
    if (r.frozen) continue;
    actions.push_back(r.action);
    ns_.resumed.insert(k);
    r.action.signal = 0;  // delivered once; later resumes just continue
    r.action.addr.reset();
  }
  // A process that ended while the target was stopping for another event
  // has its exit held by the target as the answer to the next resume that
  // covers it (all-stop's rule); its threads are gone from the list, so
  // nothing above covers it. Asked once: the target then reports the exit
  // (gdb.threads/fork-plus-threads waited for it until its timeout).
  for (int pid : ns_.exits_owed) {
    ResumeAction a;
    a.thread = ThreadRef{pid, -1};
    actions.push_back(a);
  }
  ns_.exits_owed.clear();
  if (actions.empty()) return;
  if (auto st = target_.resume(actions); !st) {
    spdlog::warn("non-stop: resume failed: {}", st.error().message);
    ns_.resumed.clear();
  }
}

// Forgets the threads gdb believes run that the target no longer lists.
// A thread that exited while its process goes on is reported ("w") when
// gdb asked for thread events: gdb turns them on while it stops every
// thread, and a thread that exits just before or after gdb's vCont;t for
// it has no stop to report, so gdb waited for it forever
// (gdb.threads/forking-threads-plus-breakpoint). gdbserver reports such
// exits the same way; not a leader's (a zombie until the process ends),
// and not when the whole process is gone: its own exit report says it.
void Dispatcher::ns_drop_gone_threads() {
  std::set<Key> live;
  std::set<int> live_pids;
  for (ThreadRef t : target_.threads()) {
    live.insert(NonStopView::key(t));
    live_pids.insert(t.pid);
  }
  for (auto it = ns_.running.begin(); it != ns_.running.end();) {
    const Key k = it->first;
    if (live.count(k)) {
      ++it;
      continue;
    }
    it = ns_.running.erase(it);
    ns_.stop_requested.erase(k);
    if (!live_pids.count(k.first))
      ns_.exits_owed.insert(k.first);
    else if (ns_.thread_events && k.first != k.second)
      ns_enqueue(rsp::build_thread_exit_reply(0, wire_id(NonStopView::ref(k)), multiprocess_));
  }
  std::erase_if(ns_.stop_requested, [&](const Key& k) { return !live.count(k); });
}

void Dispatcher::ns_handle_stop(const StopEvent& ev) {
  ns_.interrupting = false;
  ns_.resumed.clear();  // the whole target is stopped now
  if (waiting_for_stop_) {
    // vRun: answered with the stop itself, even in non-stop mode (gdbserver
    // does the same; gdb takes the new process's thread from it).
    waiting_for_stop_ = false;
    hooks_.send(stop_reply(ev));
  } else if (ns_.attach_pending && ev.kind == StopEvent::Kind::Signal) {
    // vAttach: "OK" now; gdb then stops the threads itself and must hear a
    // stop for each, so they count as running (held stopped) until it asks.
    ns_.attach_pending = false;
    for (ThreadRef t : target_.threads()) {
      if (t.pid != ev.thread.pid) continue;
      ns_.known.insert(NonStopView::key(t));
      ns_.set_running(t, true);
    }
    hooks_.send(rsp::reply_ok());
  } else {
    switch (ev.kind) {
      case StopEvent::Kind::Signal:
        // Our own interrupt (to change what runs) is no news.
        if (ev.reason == StopEvent::Reason::Interrupt || ev.reason == StopEvent::Reason::Spurious) break;
        ns_report_thread_stop(ev);
        break;
      case StopEvent::Kind::Exited:
      case StopEvent::Kind::Terminated: {
        int pid = ev.thread.pid;
        std::erase_if(ns_.running, [&](const auto& kv) { return kv.first.first == pid; });
        std::erase_if(ns_.stop_requested, [&](const Key& k) { return k.first == pid; });
        ns_.exits_owed.erase(pid);
        if (!ns_.killed.erase(pid)) ns_enqueue(stop_reply(ev));
        break;
      }
      case StopEvent::Kind::NoProcess:
        break;
    }
  }
  ns_place_new_threads(&ev);
  ns_drop_gone_threads();  // a thread asked to stop that exited meanwhile has no stop to report
  ns_answer_stop_requests();
  // Packets that waited for a stopped target, in their order.
  std::deque<std::string> held;
  held.swap(ns_.held);
  for (auto& p : held) handle_packet(p);
  ns_reconcile();
}

// A thread's own stop (breakpoint, step, signal, fork...): it is stopped
// for gdb from now on.
void Dispatcher::ns_report_thread_stop(const StopEvent& ev) {
  ns_.running.erase(NonStopView::key(ev.thread));
  ns_.stop_requested.erase(NonStopView::key(ev.thread));
  if (ev.reason == StopEvent::Reason::Fork || ev.reason == StopEvent::Reason::VFork) {
    // The child is stopped until gdb detaches or resumes it, even if
    // a look at the thread list placed it before this stop came out.
    int child = ev.child.pid;
    std::erase_if(ns_.running, [&](const auto& kv) { return kv.first.first == child; });
    std::erase_if(ns_.stop_requested, [&](const Key& k) { return k.first == child; });
  }
  ns_enqueue(stop_reply(ev));
}

// The threads gdb asked to stop (vCont;t) that are stopped now.
void Dispatcher::ns_answer_stop_requests() {
  std::set<Key> asked;
  asked.swap(ns_.stop_requested);
  for (const Key& k : asked)
    if (ns_.running.erase(k)) ns_report_requested_stop(k);  // not a fork child dropped meanwhile
}

// A thread gdb asked to stop is reported stopped with signal 0, unless the
// target holds an event of its own for it (its step finished while another
// thread's event was reported): that event is the answer, as gdbserver
// reports a pending status. A finished displaced step reported as a plain
// stop reads as not executed, and gdb then leaves the return address of a
// stepped `call` pointing into its scratch pad: `next` stopped inside the
// called function (gdb.threads/next-fork-other-thread, vfork, non-stop).
void Dispatcher::ns_report_requested_stop(const Key& k) {
  ThreadRef t = NonStopView::ref(k);
  if (auto ev = target_.take_pending_stop(t)) {
    if (ns_.ctrl_c == k) ns_.ctrl_c.reset();
    ns_report_thread_stop(*ev);
    // A fork child the target listed from now on is stopped until gdb
    // detaches or resumes it, as for a fork stop reported by the target.
    ns_place_new_threads(&*ev);
    return;
  }
  ns_enqueue(ns_stopped_reply(t, false));
}

// Threads gdb has not placed yet (new since the last look). gdb takes a thread it finds in the list
// for running (remote.c: "assume new found threads are executing"), so a
// new thread runs; a new process it hears of in a stop (the first stop of
// vRun, a fork child) is stopped until gdb resumes it.
void Dispatcher::ns_place_new_threads(const StopEvent* ev) {
  // The thread that reported is stopped, even if gdb first hears of it now.
  // Not the thread our own interrupt names (no news to gdb): a new thread
  // there is running for gdb like any other.
  if (ev && ev->kind == StopEvent::Kind::Signal && ev->reason != StopEvent::Reason::Interrupt &&
      ev->reason != StopEvent::Reason::Spurious)
    ns_.known.insert(NonStopView::key(ev->thread));
  for (ThreadRef t : target_.threads()) {
    Key k = NonStopView::key(t);
    if (!ns_.known.insert(k).second) continue;
    bool fork_child = ev && (ev->reason == StopEvent::Reason::Fork || ev->reason == StopEvent::Reason::VFork) &&
                      ev->child.pid == t.pid;
    bool started = ev && ev->reason == StopEvent::Reason::Start && ev->thread.pid == t.pid;
    if (fork_child || started) continue;
    ns_.set_running(t);
    // Created by a running thread while the target runs: it runs already.
    if (target_.running()) ns_.resumed.insert(k);
  }
}

void Dispatcher::ns_enqueue(std::string reply) {
  ns_.queue.push_back(std::move(reply));
  // One notification at a time: gdb drains the rest with vStopped.
  if (ns_.queue.size() == 1 && hooks_.notify) hooks_.notify("Stop:" + ns_.queue.front());
}

// The stop of a thread that is stopped for gdb: its last event if it is
// the one that stopped the target (use_last), else a plain stop (T00, what
// gdb expects for threads it stopped with vCont;t).
std::string Dispatcher::ns_stopped_reply(ThreadRef t, bool use_last) {
  auto last = target_.last_stop();
  if (use_last && last && last->kind == StopEvent::Kind::Signal && last->thread == t &&
      last->reason != StopEvent::Reason::Interrupt)
    return stop_reply(*last);
  StopEvent ev;
  ev.thread = t;
  ev.signal = 0;
  if (ns_.ctrl_c == NonStopView::key(t)) {
    ev.signal = SIGINT;
    ns_.ctrl_c.reset();
  }
  return stop_reply(ev);
}

// vCtrlC: one running thread stops with SIGINT, as if the program got a
// ^C; gdb stops the others itself if it wants them stopped.
std::string Dispatcher::ns_ctrl_c() {
  if (!ns_.enabled) {
    handle_interrupt();
    return rsp::reply_ok();
  }
  for (auto& [k, r] : ns_.running) {
    if (r.frozen) continue;
    ns_.ctrl_c = k;
    ns_.stop_requested.insert(k);
    ns_reconcile();
    return rsp::reply_ok();
  }
  return rsp::reply_error(1);
}

// '?' in non-stop mode: the stops of the threads that are stopped for
// gdb, the first as the reply and the rest through vStopped; "OK" when
// none is. Threads gdb has not placed yet (it just connected) are stopped
// only if one is the thread of the last stop; the others run from now on,
// as with gdbserver, which reports just that thread after an attach.
std::string Dispatcher::ns_halt_reason() {
  ns_.queue.clear();
  auto last = target_.last_stop();
  for (ThreadRef t : target_.threads()) {
    Key k = NonStopView::key(t);
    bool fresh = ns_.known.insert(k).second;
    if (ns_.running.count(k)) continue;
    bool last_one = last && last->kind == StopEvent::Kind::Signal && last->thread == t;
    if (fresh && !last_one) {
      ns_.set_running(t);
      continue;
    }
    ns_.queue.push_back(ns_stopped_reply(t, true));
  }
  ns_reconcile();
  return ns_.queue.empty() ? rsp::reply_ok() : ns_.queue.front();
}

std::string Dispatcher::ns_vstopped() {
  if (!ns_.queue.empty()) ns_.queue.pop_front();
  return ns_.queue.empty() ? rsp::reply_ok() : ns_.queue.front();
}

}  // namespace dbgstub

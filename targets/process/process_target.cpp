// ProcessTarget (user mode through ptrace): construction, its books of
// processes and threads, and the queries on them. The rest of the class is
// in the process_*.cpp files next to this one (see process_target_impl.h).
#include "targets/process/process_target.h"

#include <signal.h>

#include <algorithm>

#include "targets/process/process_documents.h"

namespace dbgstub {

ProcessTarget::ProcessTarget(asio::io_context& io, ChildEvents& events)
    : io_(io), events_(events), retry_timer_(io), no_resumed_timer_(io) {
  events_.on_sigchld([this] { check_zombie_leaders(); });
}

ProcessTarget::~ProcessTarget() {
  events_.on_sigchld(nullptr);
  take_back_terminal(tty_owner_);
  for (auto& [tid, t] : threads_) events_.unwatch(tid);
  for (auto& [pid, p] : procs_) close_mem(p);
}

std::string ProcessTarget::describe() const {
  std::string s = "Linux process";
  for (auto& [pid, p] : procs_) {
    auto exe = procdocs::exec_file(pid);
    s += " " + std::to_string(pid) + (exe ? " (" + *exe + ")" : "");
  }
  return s;
}

// ---------------------------------------------------------------------------
// Books

void ProcessTarget::add_thread(pid_t pid, pid_t tid, bool fresh) {
  Thread t;
  t.tid = tid;
  t.pid = pid;
  t.fresh = fresh;
  threads_[tid] = std::move(t);
  events_.watch(tid, [this](pid_t id, int status) {
    on_status(id, status);
    advance_step_over();
  });
}

// Drops every thread of `pid` except `keep` (0: none) from our books.
void ProcessTarget::forget_threads(pid_t pid, pid_t keep) {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->second.pid == pid && it->first != keep) {
      events_.unwatch(it->first);
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
}

void ProcessTarget::remove_thread(pid_t tid) {
  events_.unwatch(tid);
  threads_.erase(tid);
}

// ---------------------------------------------------------------------------
// Queries

ProcessTarget::Process* ProcessTarget::find_process(int pid) {
  if (pid <= 0 && !procs_.empty()) {
    for (auto& [id, p] : procs_)
      if (!p.kill_requested) return &p;
    return nullptr;
  }
  auto it = procs_.find(pid);
  return it == procs_.end() || it->second.kill_requested ? nullptr : &it->second;
}

ProcessTarget::Thread* ProcessTarget::find_thread(ThreadRef r) {
  if (r.tid <= 0) {
    for (auto& [tid, t] : threads_)
      if ((r.pid <= 0 || t.pid == r.pid) && !procs_[t.pid].kill_requested) return &t;
    return nullptr;
  }
  auto it = threads_.find(r.tid);
  return it == threads_.end() ? nullptr : &it->second;
}

bool ProcessTarget::has_processes() const {
  for (auto& [pid, p] : procs_)
    if (!p.kill_requested) return true;
  return false;
}

std::vector<ProcessInfo> ProcessTarget::processes() const {
  std::vector<ProcessInfo> out;
  for (auto& [pid, p] : procs_) {
    if (p.kill_requested) continue;
    ProcessInfo info;
    info.pid = pid;
    info.attached = p.attached;
    info.index = p.index;
    info.origin = p.origin;
    info.parent_pid = p.parent;
    auto exe = procdocs::exec_file(pid);
    if (exe) info.executable = *exe;
    info.name = procdocs::thread_name(pid, pid);
    out.push_back(info);
  }
  return out;
}

std::vector<int> ProcessTarget::process_ids() const {
  std::vector<int> out;
  for (auto& [pid, p] : procs_)
    if (!p.kill_requested) out.push_back(pid);  // as processes()
  return out;
}

std::vector<ThreadRef> ProcessTarget::threads() const {
  std::vector<ThreadRef> out;
  for (auto& [tid, t] : threads_) {
    auto p = procs_.find(t.pid);
    if (p == procs_.end() || p->second.kill_requested || p->second.launching || p->second.hidden || t.fresh ||
        t.zombie || unreported_child(t.pid))
      continue;
    out.push_back({t.pid, tid});
  }
  // The leader first, as GDB numbers threads in list order.
  std::stable_partition(out.begin(), out.end(), [](const ThreadRef& r) { return r.pid == r.tid; });
  return out;
}

std::string ProcessTarget::thread_name(ThreadRef t) const { return procdocs::thread_name(t.pid, t.tid); }

bool ProcessTarget::thread_alive(ThreadRef r) const {
  auto it = threads_.find(r.tid);
  return it != threads_.end() && (r.pid <= 0 || it->second.pid == r.pid) && !runs_free(it->second) &&
         !it->second.zombie && !unreported_child(it->second.pid);
}

// A child whose fork/vfork event is still pending with its parent: the
// debugger doesn't know it yet, so it is not listed (gdbserver's
// thread_pending_parent), not resumed, and goes with its parent.
bool ProcessTarget::unreported_child(pid_t pid) const {
  auto is_fork = [pid](const std::optional<StopEvent>& ev) {
    return ev && (ev->reason == StopEvent::Reason::Fork || ev->reason == StopEvent::Reason::VFork) &&
           ev->child.pid == pid;
  };
  if (is_fork(reporting_) || is_fork(posted_)) return true;
  for (auto& [tid, t] : threads_)
    if (is_fork(t.pending)) return true;
  return false;
}

void ProcessTarget::drop_unreported_children(pid_t parent, bool kill) {
  std::vector<pid_t> children;
  for (auto& [tid, t] : threads_)
    if (t.pid == parent && t.pending &&
        (t.pending->reason == StopEvent::Reason::Fork || t.pending->reason == StopEvent::Reason::VFork)) {
      children.push_back(t.pending->child.pid);
      t.pending.reset();
    }
  for (pid_t c : children) {
    auto it = procs_.find(c);
    if (it == procs_.end()) continue;
    if (kill) {
      it->second.kill_requested = true;
      it->second.kill_reported = false;
      ::kill(c, SIGKILL);
    } else {
      detach_now(it->second);
    }
  }
}

}  // namespace dbgstub

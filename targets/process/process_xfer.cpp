// Documents the debugger reads about a process or thread: siginfo, TLS
// addresses (libthread_db), auxv, the executable, the library list,
// osdata and memory regions (most from process_documents.h).
#include <signal.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "targets/local_kernel/local_kernel_internal.h"
#include "targets/process/process_documents.h"
#include "targets/process/process_target_impl.h"

namespace dbgstub {

using process_impl::errno_error;

// ---------------------------------------------------------------------------
// Documents

Result<std::string> ProcessTarget::siginfo(ThreadRef r) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  siginfo_t si{};
  if (t->interrupt_stop) {
    // Stopped by our PTRACE_INTERRUPT, whose siginfo is a SIGTRAP of
    // ptrace's own: show what gdbserver's threads show there, the SIGSTOP
    // it stops them with (tkill from the stub), not a SIGTRAP that reads
    // like a breakpoint (gdb.threads/attach-into-signal's $_siginfo).
    si.si_signo = SIGSTOP;
    si.si_code = SI_TKILL;
    si.si_pid = ::getpid();
    si.si_uid = ::getuid();
    return std::string(reinterpret_cast<const char*>(&si), sizeof si);
  }
  if (ptrace(PTRACE_GETSIGINFO, t->tid, nullptr, &si) != 0) return errno_error("siginfo");
  return std::string(reinterpret_cast<const char*>(&si), sizeof si);
}

Result<std::size_t> ProcessTarget::write_siginfo(ThreadRef r, uint64_t offset, const std::string& data) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  siginfo_t si{};
  if (offset >= sizeof si) return make_error(22, "offset past the end of siginfo");
  if (ptrace(PTRACE_GETSIGINFO, t->tid, nullptr, &si) != 0) return errno_error("siginfo");
  std::size_t n = std::min<std::size_t>(data.size(), sizeof si - offset);
  std::memcpy(reinterpret_cast<char*>(&si) + offset, data.data(), n);
  if (ptrace(PTRACE_SETSIGINFO, t->tid, nullptr, &si) != 0) return errno_error("siginfo");
  return n;
}

Result<uint64_t> ProcessTarget::tls_address(ThreadRef r, uint64_t offset, uint64_t lm) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  Process* p = find_process(t->pid);
  if (!p) return make_error(3, "no such process");
  if (!p->thread_db) {
    int pid = p->pid;
    auto read = [this, pid](uint64_t addr, void* buf, std::size_t len) {
      auto data = read_memory(pid, addr, len);
      if (!data || data->size() != len) return false;
      std::memcpy(buf, data->data(), len);
      return true;
    };
    auto write = [this, pid](uint64_t addr, const void* buf, std::size_t len) {
      return static_cast<bool>(write_memory(pid, addr, std::string(static_cast<const char*>(buf), len)));
    };
    auto db = ThreadDb::open(pid, thread_db_search_path_, read, write);
    if (!db) return db.error();
    p->thread_db = std::move(*db);
  }
  return p->thread_db->tls_address(t->tid, offset, lm);
}

// As gdbserver, a process whose libthread_db is loaded keeps it; the path
// applies to the next load.
std::string ProcessTarget::set_thread_db_search_path(const std::string& path) {
  thread_db_search_path_ = path.empty() ? kDefaultThreadDbSearchPath : path;
  return thread_db_search_path_;
}

Result<std::string> ProcessTarget::auxv(int pid) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  return procdocs::read_auxv(p->pid);
}

Result<std::string> ProcessTarget::exec_file(int pid) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  return procdocs::exec_file(p->pid);
}

Result<std::string> ProcessTarget::libraries_svr4(int pid, const std::string& annex) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  auto av = procdocs::read_auxv(p->pid);
  if (!av) return av.error();
  auto which = procdocs::parse_svr4_annex(annex);
  if (!which) return which.error();
  int id = p->pid;
  return procdocs::libraries_svr4(*av, [this, id](uint64_t a, std::size_t n) { return read_memory(id, a, n); },
                                  *which);
}

// gdb's "info os": the same /proc listing the local-kernel target serves.
Result<std::string> ProcessTarget::osdata(const std::string& annex) {
  if (annex.empty()) return lk::osdata_types();
  if (annex == "processes") return lk::osdata_processes("/proc");
  return make_error(22, "unknown OS data type '" + annex + "'");
}

Result<MemoryRegion> ProcessTarget::memory_region(int pid, uint64_t addr) {
  Process* p = find_process(pid);
  if (!p) return make_error(3, "no such process");
  return procdocs::memory_region(p->pid, addr);
}

}  // namespace dbgstub

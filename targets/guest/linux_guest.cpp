#include "targets/guest/linux_guest.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>

#include "targets/guest/kernel_finder.h"
#include "protocol/rsp/hex.h"


namespace dbgstub::guest {
namespace {

// A BTF blob is a few MiB; the gdbstub answers in packets of a few KiB.
constexpr std::size_t kReadChunk = 0x10000;
constexpr std::size_t kMaxBtf = 64u << 20;

}  // namespace

LinuxGuest::LinuxGuest(asio::io_context& io, std::string qga_path, ReadMemory read)
    : qga_(io, std::move(qga_path)), read_(std::move(read)) {}

Status LinuxGuest::fetch_symbols(std::chrono::milliseconds timeout) {
  // Only the few lines needed: the agent's channel is a serial line.
  std::string pattern = " (";
  for (auto& n : guest_symbol_names()) pattern += (pattern.size() > 2 ? "|" : "") + n;
  pattern += ")$";
  auto r = qga_.exec_now({"/bin/sh", "-c", "grep -E '" + pattern + "' /proc/kallsyms"}, timeout);
  if (!r) {
    symbols_error_ = "the guest's symbols could not be fetched through the guest agent: " + r.error().message;
    return make_error(r.error().code, symbols_error_);
  }
  auto s = guest_symbols_from_kallsyms(r->out);
  if (!s) {
    symbols_error_ = s.error().message;
    return s.error();
  }
  syms_ = *s;
  spdlog::info("guest: init_task at {:#x}, BTF {:#x}..{:#x}", s->init_task, s->start_btf, s->stop_btf);
  return ok_status();
}

Status LinuxGuest::find_symbols_in_memory(Target& vm) {
  auto t0 = std::chrono::steady_clock::now();
  // A vCPU in kernel mode (CS's privilege level 0) gives a RIP inside the
  // kernel to walk back from; it is left selected, so memory is read in
  // its (kernel) page tables. With none, the KASLR range is probed.
  std::optional<uint64_t> pc;
  for (ThreadRef t : vm.threads()) {
    auto cs = vm.read_register(t, 18);  // QEMU x86-64: 16 rip, 17 eflags, 18 cs
    auto rip = vm.read_register(t, 16);
    if (!cs || !rip || cs->size() < 2 || rip->size() != 8) continue;
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>((*rip)[static_cast<std::size_t>(i)]);
    if ((static_cast<unsigned char>((*cs)[0]) & 3) == 0 && in_kernel_image_range(v)) {
      pc = v;
      break;
    }
  }
  auto k = find_kernel(read_, pc, default_kallsyms_cache_dir());
  if (!k) {
    if (!syms_) symbols_error_ = "the guest kernel's symbols were not found in its memory: " + k.error().message;
    return k.error();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string text = kallsyms_text(k->symbols);
  table_ = std::make_shared<lk::SymbolTable>(lk::SymbolTable::parse(text));
  spdlog::info("guest: {} kallsyms symbols {} in {:.2f} s (kernel at {:#x}, slide {:#x}{})", k->symbols.size(),
               k->from_cache ? "from the cache" : "from memory", secs, k->base, k->slide,
               k->banner.empty() ? "" : ", " + k->banner.substr(0, k->banner.find(" (")));
  auto s = guest_symbols_from_kallsyms(text);
  if (!s) {
    if (!syms_) symbols_error_ = s.error().message;
    return s.error();
  }
  if (syms_ && syms_->init_task != s->init_task)
    spdlog::warn("guest: init_task from memory ({:#x}) differs from the agent's ({:#x}); using memory's",
                 s->init_task, syms_->init_task);
  syms_ = *s;
  return ok_status();
}

std::vector<TargetCommand> LinuxGuest::commands() {
  if (!table_) return {};
  std::shared_ptr<lk::SymbolTable> t = table_;
  return {
      {"ln", "ADDRESS|SYMBOL: nearest guest kernel symbols (kallsyms, read from guest memory)",
       [t](const std::string& a) { return lk::list_nearest(*t, a); }},
      {"x", "[module!]PATTERN: guest kernel symbols matching (* and ?)",
       [t](const std::string& a) { return lk::examine_symbols(*t, a); }},
  };
}

Status LinuxGuest::load_layout() {
  if (layout_) return ok_status();
  if (!syms_) return make_error(2, symbols_error_);
  std::size_t size = static_cast<std::size_t>(syms_->stop_btf - syms_->start_btf);
  if (size > kMaxBtf) return make_error(27, "the guest kernel's BTF is implausibly large");
  std::string raw;
  raw.reserve(size);
  for (std::size_t off = 0; off < size; off += kReadChunk) {
    auto part = read_(syms_->start_btf + off, std::min(kReadChunk, size - off));
    if (!part) return make_error(part.error().code, "reading the guest kernel's BTF: " + part.error().message);
    raw += *part;
  }
  auto l = task_layout_from_btf(raw);
  if (!l) return l.error();
  layout_ = *l;
  spdlog::info("guest: task_struct tasks@{:#x} pid@{:#x} comm@{:#x} ({} bytes of BTF)", l->tasks, l->pid, l->comm,
               size);
  return ok_status();
}

GuestProcess LinuxGuest::from_task(const GuestTask& t) {
  GuestProcess p;
  p.address = t.address;
  p.pid = t.tgid;
  p.name = t.comm;
  p.kernel_thread = t.kernel_thread;
  p.idle = t.idle;
  p.start_ns = t.start_ns;
  p.exiting = t.exiting;
  return p;
}

Result<std::vector<GuestProcess>> LinuxGuest::list() {
  if (auto st = load_layout(); !st) return st.error();
  auto tasks = walk_tasks(read_, *syms_, *layout_);
  if (!tasks) return tasks.error();
  std::vector<GuestProcess> out;
  for (auto& t : *tasks) out.push_back(from_task(t));
  return out;
}

Result<GuestProcess> LinuxGuest::at(uint64_t address) {
  if (auto st = load_layout(); !st) return st.error();
  // Only what the task list holds: an address from elsewhere is not taken
  // on trust (it would be read as a task_struct whatever it is).
  auto all = list();
  if (!all) return all.error();
  for (auto& p : *all)
    if (p.address == address) return p;
  return make_error(ESRCH, "no process at " + rsp::hex_u64(address) + " (\"monitor !process 0 0\" lists them)");
}

Result<GuestProcess> LinuxGuest::current(unsigned cpu) {
  if (auto st = load_layout(); !st) return st.error();
  auto addr = current_task_of_cpu(read_, *syms_, *layout_, cpu);
  if (!addr) return addr.error();
  auto t = read_task(read_, *addr, *layout_);
  if (!t) return t.error();
  GuestProcess p = from_task(*t);
  // A thread's process is its group leader: report that one's address.
  if (t->pid != t->tgid && !t->kernel_thread) {
    if (auto leader = list())
      for (auto& q : *leader)
        if (q.pid == t->tgid) p.address = q.address;
  }
  return p;
}

void LinuxGuest::terminate(const GuestProcess& p, std::function<void(Status)> done,
                           std::function<void(const std::string&)> notice) {
  if (qga_.path().empty()) {
    if (!caller_)
      return done(make_error(95, "ending a guest process needs the guest agent or the VM's gdbstub (--vm ...)"));
    return done(kill_by_kernel_call(p));
  }
  // The pid is checked against the name first: a process that ended while
  // the VM was halted may have left its pid to another one. A zombie (it
  // has exited, its parent has not reaped it yet) has ended: it is not
  // waited for, and not reported as still running.
  std::string pid = std::to_string(p.pid);
  std::string zombie = "grep -q '^State:[[:space:]]*Z' /proc/" + pid + "/status 2>/dev/null";
  // With its start time known, the pid must also have started then:
  // /proc/PID/stat's 22nd field, in clock ticks (USER_HZ, 100 on x86)
  // since boot; a tick either way for rounding. After the command (field
  // 2), which may hold spaces and parentheses, it is the 20th.
  std::string started;
  if (p.start_ns) {
    long long ticks = static_cast<long long>(*p.start_ns / 10'000'000ull);
    started = "s=$(sed 's/^.*) //' /proc/" + pid + "/stat 2>/dev/null | cut -d' ' -f20); [ -n \"$s\" ] || exit 3; "
              "d=$((s - " + std::to_string(ticks) + ")); [ $d -ge -1 ] && [ $d -le 1 ] || exit 4; ";
  }
  std::string script = "c=$(cat /proc/" + pid + "/comm 2>/dev/null) || exit 3; "
                       "[ \"$c\" = \"$1\" ] || exit 4; " + started + zombie + " && exit 7; kill -9 " + pid + " || exit 5; "
                       "i=0; while [ -e /proc/" + pid + " ] && ! " + zombie + " && [ $i -lt 100 ]; do "
                       "i=$((i+1)); sleep 0.05; done; "
                       "[ -e /proc/" + pid + " ] && ! " + zombie + " && exit 6; exit 0";
  qga_.exec(
      {"/bin/sh", "-c", script, "sh", p.name}, std::chrono::seconds(30),
      [p, done](Result<ExecResult> r) {
        if (!r) return done(make_error(r.error().code, r.error().message));
        switch (r->exit_code) {
          case 0: return done(ok_status());
          case 3: return done(make_error(ESRCH, "it had already gone"));
          case 4:
            return done(make_error(ESRCH, "it had already gone (pid " + std::to_string(p.pid) +
                                              " is another process now)"));
          case 7: return done(make_error(ESRCH, "it had already ended (a zombie its parent has not reaped yet)"));
          case 6: return done(make_error(EBUSY, "it was sent SIGKILL but has not ended yet"));
          default:
            return done(make_error(EIO, "kill failed in the guest (exit code " + std::to_string(r->exit_code) + ")" +
                                            (r->err.empty() ? "" : ": " + r->err)));
        }
      },
      std::move(notice));
}

Status LinuxGuest::still_there(const GuestProcess& p) {
  auto all = list();
  if (!all) return make_error(all.error().code, "its task could not be checked: " + all.error().message);
  for (auto& q : *all) {
    if (q.address != p.address) continue;
    if (q.pid != p.pid || q.name != p.name)
      return make_error(ESRCH, "it had already gone (its task is " + q.name + ", pid " + std::to_string(q.pid) +
                                   " now)");
    if (p.start_ns && q.start_ns && *p.start_ns != *q.start_ns)
      return make_error(ESRCH, "it had already gone (its task is a later process with the same pid)");
    // Sending it SIGKILL would change nothing: it has ended.
    if (q.exiting) return make_error(ESRCH, "it had already ended (a zombie its parent has not reaped yet)");
    return ok_status();
  }
  return make_error(ESRCH, "it had already gone");
}

// SIGKILL from the guest kernel: send_sig(9, task, 1), SEND_SIG_PRIV (the
// kernel's own signal, no permission check), from a vCPU borrowed at the
// entry of schedule (process context, interrupts on, no spinlock held),
// returning to startup_64 (boot code, never run again). The task is
// checked at that moment, the VM halted, so a pid reused meanwhile is
// never hit.
Status LinuxGuest::kill_by_kernel_call(const GuestProcess& p) {
  if (!table_) return make_error(ENOENT, symbols_error_);
  auto sym = [this](std::initializer_list<const char*> names) -> std::optional<uint64_t> {
    for (const char* n : names)
      for (const auto* s : table_->find(n))
        if (s->module.empty() && s->addr != 0) return s->addr;
    return std::nullopt;
  };
  auto schedule = sym({"schedule"});
  auto send_sig = sym({"send_sig"});
  auto trap = sym({"startup_64", "_text"});
  if (!schedule || !send_sig || !trap)
    return make_error(ENOENT, std::string("the guest kernel's symbol ") +
                                  (!schedule ? "schedule" : !send_sig ? "send_sig" : "startup_64") +
                                  " was not found in its kallsyms");
  KernelCall call;
  call.safe_point = *schedule;
  call.function = *send_sig;
  call.args = {9, p.address, 1};  // SIGKILL, the task, SEND_SIG_PRIV
  call.return_trap = *trap;
  call.wait = std::chrono::seconds(10);
  call.check = [this, p] { return still_there(p); };
  spdlog::info("guest: send_sig(SIGKILL, {:#x}) through the VM (pid {}, {})", p.address, p.pid, p.name);
  auto r = caller_->call_kernel(call);
  if (!r) return r.error();
  auto rc = static_cast<int64_t>(static_cast<int32_t>(*r & 0xffffffffu));  // int
  if (rc == -ESRCH) return make_error(ESRCH, "it had already gone (send_sig: no such process)");
  if (rc != 0) return make_error(EIO, "the guest kernel's send_sig returned " + std::to_string(rc));
  return ok_status();
}

}  // namespace dbgstub::guest

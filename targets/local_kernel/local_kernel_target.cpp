// Local-kernel target: this machine's running kernel, read-only. Symbols,
// types and kernel memory are loaded on first use (and kept); processes
// are read from /proc on every request.
#include "targets/local_kernel/local_kernel_target.h"

#include <spdlog/spdlog.h>
#include <sys/utsname.h>

#include <cerrno>

#include "targets/local_kernel/local_kernel_internal.h"
#include "targets/process/x86_registers.h"

namespace dbgstub {

namespace {
constexpr const char* kNoWrite = "writing memory or registers is not supported in a local kernel session";
constexpr const char* kNoBreak = "breakpoints and watchpoints are not supported in a local kernel session";
constexpr const char* kNoResume = "continue and step are not supported in a local kernel session";
constexpr const char* kNoInterrupt = "interrupt is not supported in a local kernel session";
constexpr const char* kNoKill = ".kill is not supported in a local kernel session";
}  // namespace

struct LocalKernelTarget::Impl {
  Paths paths;

  // Loaded on first use; a failure is kept and reported each time.
  std::optional<Result<lk::SymbolTable>> symbols;
  std::optional<Status> kcore_status;
  lk::KcoreReader kcore;
  std::optional<Status> btf_status;
  lk::BtfTypes btf;

  const Result<lk::SymbolTable>& symbol_table() {
    if (!symbols) {
      symbols = lk::SymbolTable::load(paths.kallsyms);
      if (*symbols && (*symbols)->addresses_hidden()) spdlog::warn("{}", lk::kHiddenAddressesNote);
    }
    return *symbols;
  }

  const Status& kcore_open() {
    if (!kcore_status) {
      kcore_status = kcore.open(paths.kcore);
      if (!*kcore_status) spdlog::warn("{}", kcore_status->error().message);
    }
    return *kcore_status;
  }

  const Status& btf_open() {
    if (!btf_status) btf_status = btf.load(paths.btf);
    return *btf_status;
  }

  lk::CommandOutput with_symbols(const std::function<lk::CommandOutput(const lk::SymbolTable&)>& f) {
    const auto& t = symbol_table();
    if (!t) return {false, "kernel symbols are not available: " + t.error().message + "\n"};
    return f(*t);
  }
};

LocalKernelTarget::LocalKernelTarget() : LocalKernelTarget(Paths{}) {}
LocalKernelTarget::LocalKernelTarget(Paths paths) : impl_(std::make_unique<Impl>()) { impl_->paths = std::move(paths); }
LocalKernelTarget::~LocalKernelTarget() = default;

std::string LocalKernelTarget::describe() const {
  utsname u{};
  if (::uname(&u) != 0) return "local kernel";
  return std::string("local kernel ") + u.release;
}

// Nothing ever runs or stops: there are no stop events to report.
void LocalKernelTarget::set_stop_handler(StopHandler) {}
std::vector<ProcessInfo> LocalKernelTarget::processes() const { return {}; }
std::vector<ThreadRef> LocalKernelTarget::threads() const { return {{1, 1}}; }
bool LocalKernelTarget::thread_alive(ThreadRef t) const { return t.pid == 1 && t.tid == 1; }
std::optional<StopEvent> LocalKernelTarget::last_stop() const { return std::nullopt; }

std::string LocalKernelTarget::target_xml() const { return x86::target_xml(); }

Result<std::string> LocalKernelTarget::read_registers(ThreadRef) {
  const auto& last = x86::registers().back();
  return std::string(static_cast<std::size_t>(last.offset + last.bitsize / 8), '\0');
}

Status LocalKernelTarget::write_registers(ThreadRef, const std::string&) { return make_error(EPERM, kNoWrite); }

Result<std::string> LocalKernelTarget::read_register(ThreadRef, int regno) {
  if (regno < 0 || regno >= x86::register_count()) return make_error(EINVAL, "no such register");
  return std::string(static_cast<std::size_t>(x86::registers()[static_cast<std::size_t>(regno)].bitsize / 8), '\0');
}

Status LocalKernelTarget::write_register(ThreadRef, int, const std::string&) { return make_error(EPERM, kNoWrite); }

Result<std::string> LocalKernelTarget::read_memory(int, uint64_t addr, std::size_t len) {
  const Status& st = impl_->kcore_open();
  if (!st) return st.error();
  auto r = impl_->kcore.read(addr, len);
  if (!r) spdlog::debug("{}", r.error().message);
  return r;
}

Status LocalKernelTarget::write_memory(int, uint64_t, const std::string&) { return make_error(EPERM, kNoWrite); }
Status LocalKernelTarget::insert_breakpoint(int, BreakpointType, uint64_t, uint64_t) { return make_error(EPERM, kNoBreak); }
Status LocalKernelTarget::remove_breakpoint(int, BreakpointType, uint64_t, uint64_t) { return make_error(EPERM, kNoBreak); }
Status LocalKernelTarget::resume(const std::vector<ResumeAction>&) { return make_error(EPERM, kNoResume); }
Status LocalKernelTarget::interrupt() { return make_error(EPERM, kNoInterrupt); }
Status LocalKernelTarget::kill_process(int, const KillOptions&) { return make_error(EPERM, kNoKill); }
Status LocalKernelTarget::detach_process(int) { return ok_status(); }  // nothing is attached

std::vector<TargetCommand> LocalKernelTarget::commands() {
  Impl* impl = impl_.get();
  return {
      {"ln", "ADDRESS|SYMBOL: nearest kernel symbols (from /proc/kallsyms)",
       [impl](const std::string& a) {
         return impl->with_symbols([&](const lk::SymbolTable& t) { return lk::list_nearest(t, a); });
       }},
      {"x", "[module!]PATTERN: kernel symbols matching (* and ?; module nt for the kernel image)",
       [impl](const std::string& a) {
         return impl->with_symbols([&](const lk::SymbolTable& t) { return lk::examine_symbols(t, a); });
       }},
      {"!process", "[0 0]: processes of this machine (from /proc)",
       [impl](const std::string& a) { return lk::bang_process(impl->paths.proc, a); }},
      {"dt", "TYPE [FIELD]: layout of a kernel struct, union or enum (from BTF)",
       [impl](const std::string& a) -> lk::CommandOutput {
         const Status& st = impl->btf_open();
         if (!st) return {false, st.error().message + "\n"};
         return impl->btf.display_type(a);
       }},
  };
}

std::optional<uint64_t> LocalKernelTarget::kernel_base() {
  const auto& t = impl_->symbol_table();
  if (!t || t->addresses_hidden()) return std::nullopt;
  for (const char* name : {"_text", "_stext"}) {
    auto found = t->find(name, std::string("nt"));
    if (!found.empty() && found.front()->addr != 0) return found.front()->addr;
  }
  return std::nullopt;
}

Result<std::string> LocalKernelTarget::osdata(const std::string& annex) {
  if (annex.empty()) return lk::osdata_types();
  if (annex == "processes") return lk::osdata_processes(impl_->paths.proc);
  return make_error(EINVAL, "no OS data of type '" + annex + "' (types: processes)");
}

}  // namespace dbgstub

// PLACEHOLDER being replaced by the real implementation (in progress).
#include "targets/local_kernel/local_kernel_target.h"

#include "targets/process/x86_registers.h"

namespace dbgstub {

struct LocalKernelTarget::Impl {
  Paths paths;
};

LocalKernelTarget::LocalKernelTarget() : LocalKernelTarget(Paths{}) {}
LocalKernelTarget::LocalKernelTarget(Paths paths) : impl_(std::make_unique<Impl>(Impl{std::move(paths)})) {}
LocalKernelTarget::~LocalKernelTarget() = default;
std::string LocalKernelTarget::describe() const { return "local kernel"; }
void LocalKernelTarget::set_stop_handler(StopHandler) {}
std::vector<ProcessInfo> LocalKernelTarget::processes() const { return {}; }
std::vector<ThreadRef> LocalKernelTarget::threads() const { return {{1, 1}}; }
bool LocalKernelTarget::thread_alive(ThreadRef t) const { return t.tid == 1; }
std::optional<StopEvent> LocalKernelTarget::last_stop() const { return std::nullopt; }
std::string LocalKernelTarget::target_xml() const { return x86::target_xml(); }
Result<std::string> LocalKernelTarget::read_registers(ThreadRef) {
  return std::string(static_cast<std::size_t>(x86::registers().back().offset + x86::registers().back().bitsize / 8), '\0');
}
Status LocalKernelTarget::write_registers(ThreadRef, const std::string&) { return make_error(1, "read-only"); }
Result<std::string> LocalKernelTarget::read_register(ThreadRef, int regno) {
  if (regno < 0 || regno >= x86::register_count()) return make_error(22, "no such register");
  return std::string(static_cast<std::size_t>(x86::registers()[regno].bitsize / 8), '\0');
}
Status LocalKernelTarget::write_register(ThreadRef, int, const std::string&) { return make_error(1, "read-only"); }
Result<std::string> LocalKernelTarget::read_memory(int, uint64_t, std::size_t) { return make_error(5, "not yet"); }
Status LocalKernelTarget::write_memory(int, uint64_t, const std::string&) { return make_error(1, "read-only"); }
Status LocalKernelTarget::insert_breakpoint(int, BreakpointType, uint64_t, uint64_t) { return make_error(1, "read-only"); }
Status LocalKernelTarget::remove_breakpoint(int, BreakpointType, uint64_t, uint64_t) { return make_error(1, "read-only"); }
Status LocalKernelTarget::resume(const std::vector<ResumeAction>&) { return make_error(1, "read-only"); }
Status LocalKernelTarget::interrupt() { return make_error(1, "read-only"); }
Status LocalKernelTarget::kill_process(int, const KillOptions&) { return make_error(1, "read-only"); }
Status LocalKernelTarget::detach_process(int) { return ok_status(); }
std::vector<TargetCommand> LocalKernelTarget::commands() { return {}; }
Result<std::string> LocalKernelTarget::osdata(const std::string&) { return make_error(95, "not yet"); }

}  // namespace dbgstub

// Registers of stopped threads (x86_registers.h), fetched once a stop.
#include "targets/process/process_target.h"

namespace dbgstub {

// ---------------------------------------------------------------------------
// Registers

std::string ProcessTarget::target_xml() const { return x86::target_xml(); }

std::vector<int> ProcessTarget::expedited_registers() const {
  return {x86::fp_regno(), x86::sp_regno(), x86::pc_regno()};
}

Result<x86::ThreadRegisters*> ProcessTarget::regs_of(ThreadRef r, bool with_fp) {
  Thread* t = find_thread(r);
  if (!t) return make_error(3, "no such thread");
  if (!t->stopped) return make_error(16, "thread is running");
  if (!t->regs) {
    auto regs = x86::ThreadRegisters::fetch(t->tid, with_fp);
    if (!regs) return regs.error();
    t->regs = std::move(*regs);
  } else if (with_fp) {
    auto st = t->regs->load_fp(t->tid);
    if (!st) return st.error();
  }
  return &*t->regs;
}

Result<std::string> ProcessTarget::read_registers(ThreadRef r) {
  auto regs = regs_of(r);
  if (!regs) return regs.error();
  return (*regs)->read_all();
}

Status ProcessTarget::write_registers(ThreadRef r, const std::string& data) {
  auto regs = regs_of(r);
  if (!regs) return regs.error();
  auto st = (*regs)->write_all(data);
  if (!st) return st;
  return (*regs)->store(find_thread(r)->tid);
}

Result<std::string> ProcessTarget::read_register(ThreadRef r, int regno) {
  auto regs = regs_of(r, !x86::is_gpr(regno));
  if (!regs) return regs.error();
  return (*regs)->read(regno);
}

Status ProcessTarget::write_register(ThreadRef r, int regno, const std::string& value) {
  auto regs = regs_of(r, !x86::is_gpr(regno));
  if (!regs) return regs.error();
  auto st = (*regs)->write(regno, value);
  if (!st) return st;
  return (*regs)->store(find_thread(r)->tid);
}

}  // namespace dbgstub

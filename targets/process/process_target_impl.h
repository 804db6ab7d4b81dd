// Private to the files that implement ProcessTarget (process_target.cpp,
// process_*.cpp, step_over.cpp): the small ptrace helpers they share.
#pragma once

#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "targets/process/process_target.h"

namespace dbgstub::process_impl {

inline Error errno_error(const std::string& what) {
  int e = errno;
  return make_error(e ? e : 1, what + ": " + std::strerror(e));
}

inline uint64_t peek_pc(pid_t tid) {
  errno = 0;
  long v = ptrace(PTRACE_PEEKUSER, tid, offsetof(struct user_regs_struct, rip), nullptr);
  return errno ? 0 : static_cast<uint64_t>(v);
}

inline void poke_pc(pid_t tid, uint64_t pc) {
  ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rip), pc);
}

}  // namespace dbgstub::process_impl

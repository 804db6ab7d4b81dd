// x86-64 Linux register file for ptrace'd threads: the layout GDB sees
// (target.xml and the 'g' packet), lldb's qRegisterInfo view of it, and
// conversion to and from the kernel's user_regs_struct and XSAVE area.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace dbgstub::x86 {

struct RegisterInfo {
  std::string name;
  int bitsize = 64;
  int offset = 0;          // byte offset in the 'g' packet
  std::string type;        // target.xml type: int64, code_ptr, data_ptr, i387_ext, vec128, int32, ...
  std::string group;       // general, float, sse, vector, system
  std::string feature;     // org.gnu.gdb.i386.core, .sse, .linux, .avx, ...
  std::string encoding;    // lldb: uint, ieee754, vector
  std::string format;      // lldb: hex, float, vector-uint8
  std::string set;         // lldb: "General Purpose Registers", ...
  int dwarf = -1;          // DWARF / eh_frame register number, -1 if none
  std::string generic;     // lldb: pc, sp, fp, flags, arg1.. or ""
};

// All registers in 'g' order (regno = index).
const std::vector<RegisterInfo>& registers();
int register_count();
int regno_of(const std::string& name);   // -1 if unknown
std::string target_xml();                // one self-contained document
int pc_regno();   // rip
int sp_regno();   // rsp
int fp_regno();   // rbp

// Whether a register lives in user_regs_struct (PTRACE_GETREGS), not in
// the x87/SSE/AVX state.
bool is_gpr(int regno);

// The register state of one stopped thread, read with ptrace, edited in
// memory, written back only if changed. The x87/SSE/AVX state (the 2-3 KiB
// XSAVE area) is read only when asked for: with_fp at fetch, or load_fp();
// a stop reply needs only general registers.
class ThreadRegisters {
 public:
  static Result<ThreadRegisters> fetch(pid_t tid, bool with_fp = true);
  bool has_fp() const { return fp_loaded_; }
  Status load_fp(pid_t tid);
  // The thread's pc was set to `pc` directly (PTRACE_POKEUSER): the cache
  // follows without anything to store.
  void assume_pc(uint64_t pc);
  Result<std::string> read(int regno) const;                     // raw LE bytes
  Status write(int regno, const std::string& value);             // size must match
  std::string read_all() const;                                  // 'g' bytes
  Status write_all(const std::string& data);                     // 'G' bytes (may be shorter: prefix)
  Status store(pid_t tid);                                       // write back dirty sets
  uint64_t pc() const;
  void set_pc(uint64_t pc);

 private:
  ThreadRegisters() = default;
  std::vector<uint8_t> gpr_;    // user_regs_struct bytes
  std::vector<uint8_t> xsave_;  // kernel-sized XSAVE area (may be empty: then FXSAVE via PTRACE_GETFPREGS)
  bool have_xsave_ = false;
  bool fp_loaded_ = false;
  bool gpr_dirty_ = false, fp_dirty_ = false;
};

// Hardware debug registers (DR0-DR3, DR6, DR7) of one thread.
// A watch/breakpoint set for a process must be applied to all its threads
// (and to new threads as they appear): DebugRegisterState holds the wanted
// slots; apply() writes them to one thread.
struct DebugSlot {
  bool used = false;
  uint64_t addr = 0;
  int type = 0;   // 1 hw exec breakpoint, 2 write, 4 access (3, read, is refused: x86 has no read-only watch)
  int len = 1;    // 1, 2, 4, 8
};
class DebugRegisterState {
 public:
  // Finds a free slot; errors if none, or if len/alignment is not encodable;
  // error 95 (not supported) for a read watchpoint (3). Adding one that is
  // there already changes nothing (one remove takes it out).
  Status add(int type, uint64_t addr, int len);
  Status remove(int type, uint64_t addr, int len);
  Status apply(pid_t tid) const;                  // writes DR0-3 and DR7
  // After a SIGTRAP: reads DR6 of tid; returns the slot index hit (or -1), clears DR6.
  static int hit_slot(pid_t tid);
  const DebugSlot& slot(int i) const { return slots_[i]; }
  bool empty() const;
 private:
  DebugSlot slots_[4];
};

}  // namespace dbgstub::x86

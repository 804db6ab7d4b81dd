// Documents about a live Linux process that the debugger asks for by name
// (qXfer objects, lldb's memory region queries). Read from /proc and from
// the process's memory; no ptrace calls here.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "targets/target.h"

namespace dbgstub::procdocs {

// Reads target memory; returns fewer bytes (or an error) where unmapped.
using MemoryReader = std::function<Result<std::string>(uint64_t addr, std::size_t len)>;

// Raw bytes of /proc/PID/auxv.
Result<std::string> read_auxv(int pid);

// Absolute path of the program image (/proc/PID/exe).
Result<std::string> exec_file(int pid);

// qXfer:libraries-svr4:read document: walks r_debug (found through the
// main program's DT_DEBUG entry, located with AT_PHDR/AT_PHNUM from auxv)
// and the link_map chain. Before the dynamic loader has filled in r_debug
// the list is empty. Output format as gdbserver's:
// <library-list-svr4 version="1.0" main-lm="0x..."><library name=".." lm="0x.." l_addr="0x.." l_ld="0x.."/>...</library-list-svr4>
// (the main program's own link_map entry is main-lm, not a <library>).
Result<std::string> libraries_svr4(const std::string& auxv, const MemoryReader& read);

// As gdbserver 13, every <library> also carries lmid="0x.." (the address of
// its namespace's r_debug; namespaces beyond the first are followed through
// r_debug_extended.r_next). A list without libraries is self-closing:
// <library-list-svr4 version="1.0"/> (or with main-lm). Errors where
// gdbserver answers E01: no usable AT_PHDR, PT_PHDR, PT_DYNAMIC or DT_DEBUG.
// 64-bit (x86-64) processes only.

// gdb's annex "lmid=ID;start=LM;prev=PREV" (sent when it follows ld.so's
// probes to update its list incrementally). All zero: the whole list.
struct Svr4Annex {
  uint64_t lmid = 0, start = 0, prev = 0;
};
// Parses the annex like gdbserver: hex values, unknown keys are skipped;
// a value that isn't hex (or overflows 64 bits) is an error.
Result<Svr4Annex> parse_svr4_annex(const std::string& annex);

// With annex.start != 0: only the link_map chain from `start` (whose l_prev
// must be `prev`) in namespace `lmid`, and no main-lm. Otherwise the same
// as the overload above.
Result<std::string> libraries_svr4(const std::string& auxv, const MemoryReader& read, const Svr4Annex& annex);

// lldb's qMemoryRegionInfo: the mapping that contains addr, or, if none,
// an unmapped region from addr up to the next mapping (or the end of the
// address space). From /proc/PID/maps.
Result<MemoryRegion> memory_region(int pid, uint64_t addr);

// <threads><thread id="p1.2" core="0" name="comm"/>...</threads> style
// helpers: the name (comm) of a thread, "" if unknown.
std::string thread_name(int pid, int tid);

}  // namespace dbgstub::procdocs

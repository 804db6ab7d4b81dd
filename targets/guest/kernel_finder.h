// Finds a halted x86-64 Linux guest's kernel from outside: its base (and
// so the KASLR slide) from a kernel-mode instruction pointer, or by probing
// the range KASLR places the kernel in; then its kallsyms (kallsyms_reader)
// in the image. Nothing runs in the guest and nothing is written to it.
//
// What was found is cached on disk per kernel base, and used again only if
// the kernel's banner (linux_banner, read from memory) is the same: a
// reconnecting dbgstub does not decode the tables again.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "targets/guest/kallsyms_reader.h"
#include "targets/guest/linux_tasks.h"

namespace dbgstub::guest {

// x86-64: the kernel image lives in [0xffffffff80000000, +1 GiB), linked
// at 0xffffffff81000000; KASLR moves it in steps of CONFIG_PHYSICAL_ALIGN
// (2 MiB on distribution kernels), and the boot code unmaps the 2 MiB pages
// of that range before _text, so the first mapped one is the base.
constexpr uint64_t kKernelMapStart = 0xffffffff80000000ull;
constexpr uint64_t kKernelMapEnd = 0xffffffffc0000000ull;
constexpr uint64_t kKernelLinkBase = 0xffffffff81000000ull;
constexpr uint64_t kKernelAlign = 0x200000;

bool in_kernel_image_range(uint64_t addr);

// From a kernel-mode RIP (walking back while mapped), else by probing.
Result<uint64_t> find_kernel_base(const ReadMemory& read, std::optional<uint64_t> kernel_pc);

struct FoundKernel {
  uint64_t base = 0;
  int64_t slide = 0;  // base - the link address
  std::string banner;
  std::vector<KallsymsEntry> symbols;
  bool from_cache = false;
};

// Where the cache lives: $DBGSTUB_KALLSYMS_CACHE, else $CACHE_DIRECTORY/kallsyms
// (systemd's CacheDirectory=), else
// $XDG_CACHE_HOME/dbgstub/kallsyms, else ~/.cache/dbgstub/kallsyms; "" off.
std::string default_kallsyms_cache_dir();

// The whole search. `cache_dir` "" disables the cache.
Result<FoundKernel> find_kernel(const ReadMemory& read, std::optional<uint64_t> kernel_pc,
                                const std::string& cache_dir);

// "ADDR TYPE NAME" lines, as /proc/kallsyms shows them.
std::string kallsyms_text(const std::vector<KallsymsEntry>& symbols);

}  // namespace dbgstub::guest

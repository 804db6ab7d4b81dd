// The kernel's own symbol table (kallsyms), found and decoded in a guest's
// memory with no help from inside the guest. scripts/kallsyms.c writes, at
// build time, these tables into .rodata, each aligned to 8 bytes:
//   kallsyms_offsets      u32 per symbol (kallsyms_addresses: u64, in
//                         kernels built without KALLSYMS_BASE_RELATIVE)
//   kallsyms_relative_base u64 (relocated at boot: a runtime address)
//   kallsyms_num_syms     u32 (u64 in old kernels; the upper half is 0)
//   kallsyms_names        per symbol: a length (1 byte, or 2 when >= 0x80:
//                         low 7 bits then the next byte << 7), then that many
//                         token indices; the first expanded char is the type
//   kallsyms_markers      u32 per 256 symbols: offset of each block in names
//   kallsyms_seqs_of_names 3 bytes per symbol (6.2+, and some backports)
//   kallsyms_token_table  256 NUL-terminated strings
//   kallsyms_token_index  256 u16: each token's offset in token_table
// From 6.4 the order is num_syms, names, markers, token_table, token_index,
// offsets, relative_base, seqs_of_names. Both orders are read here.
//
// The token table is found by the single-character tokens "0".."9" in a row
// (digits are always kept as their own tokens), confirmed by a token index
// that matches it exactly; everything else is found from there and checked
// against each other (marker count vs symbol count, names ending where the
// markers begin). Malformed memory gives an error, never a crash.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "targets/guest/linux_tasks.h"

namespace dbgstub::guest {

struct KallsymsTables {
  uint64_t token_table = 0, token_index = 0;
  uint64_t markers = 0, names = 0, num_syms_at = 0;
  uint64_t offsets = 0;                   // or kallsyms_addresses when absolute
  std::optional<uint64_t> seqs_of_names;  // 6.2+
  uint32_t num_syms = 0;
  bool order_6_4 = false;    // offsets after the token index
  bool base_relative = true;  // offsets + relative_base (else u64 addresses)
  bool absolute_percpu = false;  // x86-64 SMP until 6.15: offsets >= 0 are absolute
  uint64_t relative_base = 0;
};

struct KallsymsEntry {
  uint64_t addr = 0;
  char type = '?';
  std::string name;
};

// Where the token table starts, searching [start, end) (read in chunks).
Result<uint64_t> find_token_table(const ReadMemory& read, uint64_t start, uint64_t end);
// The same, reading far less: samples [start, end) every 64 KiB for what
// looks like kallsyms_offsets (a run of sorted 32-bit offsets, 4 bytes a
// symbol, so hundreds of KiB long), then looks for the token table near
// each such place (after it before 6.4, before it from 6.4 on); falls back
// to find_token_table over the whole range.
Result<uint64_t> find_token_table_fast(const ReadMemory& read, uint64_t start, uint64_t end);
// The other tables, from a token table's address.
Result<KallsymsTables> locate_kallsyms(const ReadMemory& read, uint64_t token_table);
// Every symbol, in the tables' order (sorted by address, as the kernel keeps them).
Result<std::vector<KallsymsEntry>> read_kallsyms(const ReadMemory& read, const KallsymsTables& t);

// The address of one symbol's value from its raw offset (exposed for tests).
uint64_t kallsyms_address(const KallsymsTables& t, uint32_t raw_offset);

}  // namespace dbgstub::guest

// The parts of the local-kernel target, each usable (and tested) on its
// own: the kallsyms symbol table with WinDbg's ln and x, the /proc/kcore
// reader, process listings from /proc (gdb's osdata and WinDbg's
// !process), and struct layouts from the kernel's BTF (WinDbg's dt).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

struct btf;  // libbpf

namespace dbgstub::lk {

// A command's answer: ok=false makes it an error (the text says why).
using CommandOutput = std::pair<bool, std::string>;

// --- symbols: /proc/kallsyms --------------------------------------------

struct KernelSymbol {
  uint64_t addr = 0;
  char type = '?';      // kallsyms type letter: T t D d B b R r W V ...
  std::string name;
  std::string module;   // "" for the kernel image (WinDbg's "nt")
};

class SymbolTable {
 public:
  // Lines "ADDR TYPE NAME [MODULE]"; malformed lines are skipped.
  // Sorted by address (stable: equal addresses keep their file order).
  static SymbolTable parse(std::string_view text);
  static Result<SymbolTable> load(const std::string& path);

  const std::vector<KernelSymbol>& symbols() const { return syms_; }
  bool empty() const { return syms_.empty(); }
  // kallsyms shows every address as 0 to readers without CAP_SYSLOG (or
  // with kernel.kptr_restrict=2): names are there, addresses are not.
  bool addresses_hidden() const { return hidden_; }

  // Index of the last symbol whose address is <= addr.
  std::optional<std::size_t> at_or_below(uint64_t addr) const;
  // Symbols named `name` (in `module` if given; "nt"/"vmlinux" = the kernel
  // image), in address order.
  std::vector<const KernelSymbol*> find(const std::string& name, std::optional<std::string> module = {}) const;

 private:
  std::vector<KernelSymbol> syms_;
  // Indices into syms_ sorted by name, then index: find() is a binary
  // search rather than a pass over the ~200k symbols of a kernel (the KD
  // front end looks up _text for every GetVersion).
  std::vector<std::size_t> by_name_;
  bool hidden_ = false;
};

// "name" for the kernel image's symbols, "module!name" for a module's.
std::string display_name(const KernelSymbol& s);
// WinDbg-style wildcard: '*' any run, '?' any one character. Case-sensitive.
bool wildcard_match(std::string_view pattern, std::string_view text);
// Hex address as WinDbg takes it: optional 0x, optional ` separator.
std::optional<uint64_t> parse_address(std::string_view text);

// WinDbg's "!process [PROCESS [FLAGS [IMAGE]]]" arguments: PROCESS 0 or -1
// is every process (which = 0); FLAGS must be a number and are ignored.
struct BangProcessArgs {
  uint64_t which = 0;
  std::string image;  // may use * and ?; empty: any
};
std::optional<BangProcessArgs> parse_bang_process_args(const std::string& args);

extern const char* const kHiddenAddressesNote;

// WinDbg's "ln ADDR" (list nearest symbols); ADDR may also be a symbol name.
CommandOutput list_nearest(const SymbolTable& table, const std::string& args);
// WinDbg's "x [module!]PATTERN"; at most `cap` lines, then a note.
CommandOutput examine_symbols(const SymbolTable& table, const std::string& args, std::size_t cap = 1000);

// --- memory: /proc/kcore ---------------------------------------------------

struct KcoreSegment {
  uint64_t vaddr = 0;   // p_vaddr
  uint64_t offset = 0;  // p_offset
  uint64_t size = 0;    // p_filesz
};

// The PT_LOAD segments of an ELF64 little-endian core file (sorted by vaddr).
Result<std::vector<KcoreSegment>> parse_kcore_headers(int fd);

class KcoreReader {
 public:
  KcoreReader() = default;
  ~KcoreReader();
  KcoreReader(const KcoreReader&) = delete;
  KcoreReader& operator=(const KcoreReader&) = delete;

  // Opens and parses; errors name the reason ("kernel memory is not
  // readable: /proc/kcore does not exist").
  Status open(const std::string& path);
  bool is_open() const { return fd_ >= 0; }
  const std::vector<KcoreSegment>& segments() const { return segs_; }
  // Reads what is mapped from addr on (across adjacent segments); an
  // error if nothing at addr is mapped; fewer bytes where a gap begins.
  Result<std::string> read(uint64_t addr, std::size_t len) const;

 private:
  int fd_ = -1;
  std::vector<KcoreSegment> segs_;
};

// --- processes: /proc -------------------------------------------------------

struct ProcEntry {
  int pid = 0;
  int ppid = 0;
  std::string comm;
};

// Every process directory under proc_root, in directory order.
std::vector<ProcEntry> list_processes(const std::string& proc_root);
// gdb's osdata documents, as gdbserver builds them (nat/linux-osdata.c).
std::string osdata_processes(const std::string& proc_root);
std::string osdata_types();
// XML-escape as gdb's xml_escape_text.
std::string xml_escape_text(std::string_view s);
// WinDbg's "!process [CID [FLAGS [IMAGE]]]".
CommandOutput bang_process(const std::string& proc_root, const std::string& args);

// --- types: BTF --------------------------------------------------------------

class BtfTypes {
 public:
  BtfTypes() = default;
  ~BtfTypes();
  BtfTypes(const BtfTypes&) = delete;
  BtfTypes& operator=(const BtfTypes&) = delete;

  Status load(const std::string& path);
  // WinDbg's "dt TYPE [FIELD]".
  CommandOutput display_type(const std::string& args) const;

 private:
  ::btf* btf_ = nullptr;
};

}  // namespace dbgstub::lk

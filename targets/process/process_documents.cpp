#include "targets/process/process_documents.h"
#include "protocol/rsp/hex.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <unordered_set>

namespace dbgstub::procdocs {
namespace {

// Bounds for walking structures in target memory. The process may be
// corrupt or hostile, so every loop over its data needs a hard limit.
constexpr uint64_t kMaxPhdrs = 1024;      // real programs have ~15; PN_XNUM (0xffff) is not followed
constexpr int kMaxDynEntries = 4096;      // real .dynamic sections have ~30-60
constexpr int kMaxLinkMaps = 4096;        // far beyond any real library count
constexpr std::size_t kMaxName = PATH_MAX - 1;  // same limit as gdbserver's libname buffer

std::string errno_text(int err) { return std::strerror(err); }

// Reads a whole /proc file. /proc files report st_size 0, so read until EOF.
Result<std::string> read_proc_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return make_error(err, path + ": " + errno_text(err));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return make_error(err, path + ": " + errno_text(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Exactly `len` bytes at `addr`, or nothing: a short read or an address
// range that wraps around the address space counts as a failure.
std::optional<std::string> read_exact(const MemoryReader& read, uint64_t addr, std::size_t len) {
  if (len == 0) return std::string();
  if (addr + len < addr) return std::nullopt;
  auto r = read(addr, len);
  if (!r.ok() || r->size() < len) return std::nullopt;
  std::string s = std::move(*r);
  s.resize(len);  // a reader that returns too much must not confuse the caller
  return s;
}

// Target is x86-64 little endian like the host, so a memcpy decodes it.
uint64_t load_u64(const std::string& s, std::size_t off) {
  uint64_t v = 0;
  std::memcpy(&v, s.data() + off, sizeof v);
  return v;
}

uint32_t load_u32(const std::string& s, std::size_t off) {
  uint32_t v = 0;
  std::memcpy(&v, s.data() + off, sizeof v);
  return v;
}

std::optional<uint64_t> read_u64(const MemoryReader& read, uint64_t addr) {
  auto s = read_exact(read, addr, 8);
  if (!s) return std::nullopt;
  return load_u64(*s, 0);
}

// A NUL-terminated string of at most kMaxName bytes. Partial reads are
// expected (the string may end just before an unmapped page), so keep
// asking for the rest until a NUL, a failure, or the limit.
std::string read_c_string(const MemoryReader& read, uint64_t addr) {
  std::string out;
  while (out.size() < kMaxName) {
    uint64_t at = addr + out.size();
    if (at < addr) break;  // wrapped around the address space
    std::size_t want = kMaxName - out.size();
    auto r = read(at, want);
    if (!r.ok() || r->empty()) break;
    std::string chunk = std::move(*r);
    if (chunk.size() > want) chunk.resize(want);
    auto nul = chunk.find('\0');
    if (nul != std::string::npos) {
      out.append(chunk, 0, nul);
      return out;
    }
    out += chunk;
  }
  return out;
}

// gdbserver's xml_escape_text_append escapes ' " & < >. In addition, tab,
// newline and CR become character references (a raw one would be turned
// into a space by attribute-value normalization), and other C0 control
// characters, which XML 1.0 forbids even as references, become '?': a
// single odd file name must not make gdb's parser reject the whole list.
void xml_escape_append(std::string& out, const std::string& text) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\t': out += "&#9;"; break;
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      default:
        if (c < 0x20) out += '?';
        else out += static_cast<char>(c);
    }
  }
}

struct AuxvInfo {
  uint64_t phdr = 0;
  uint64_t phnum = 0;
};

AuxvInfo parse_auxv(const std::string& auxv) {
  AuxvInfo info;
  // Elf64_auxv_t is {a_type, a_val}, both 8 bytes (the stub only debugs
  // 64-bit processes); a trailing partial entry is ignored, AT_NULL ends
  // the vector.
  for (std::size_t off = 0; off + 16 <= auxv.size(); off += 16) {
    uint64_t type = load_u64(auxv, off);
    uint64_t val = load_u64(auxv, off + 8);
    if (type == AT_NULL) break;
    if (type == AT_PHDR) info.phdr = val;
    if (type == AT_PHNUM) info.phnum = val;
  }
  return info;
}

// Address of the main program's r_debug as gdbserver's get_r_debug finds
// it: the value of DT_DEBUG in the main program's dynamic section. 0 means
// "not filled in yet" (before ld.so ran); an Error means there is no
// DT_DEBUG to ever look at (static program, unreadable headers).
Result<uint64_t> find_r_debug(const std::string& auxv, const MemoryReader& read) {
  AuxvInfo ai = parse_auxv(auxv);
  if (ai.phdr == 0 || ai.phnum == 0) return make_error(EINVAL, "auxv has no AT_PHDR/AT_PHNUM");
  if (ai.phnum > kMaxPhdrs) return make_error(EINVAL, "implausible AT_PHNUM " + std::to_string(ai.phnum));

  auto phdrs = read_exact(read, ai.phdr, ai.phnum * sizeof(Elf64_Phdr));
  if (!phdrs) return make_error(EIO, "cannot read program headers at " + rsp::hex_0x(ai.phdr));
  auto phdr_at = [&](uint64_t i) {
    Elf64_Phdr p;
    std::memcpy(&p, phdrs->data() + i * sizeof p, sizeof p);
    return p;
  };

  // Load bias (0 for non-PIE programs). PT_PHDR gives it directly; real
  // programs with a DT_DEBUG always have PT_PHDR (gdbserver relies on
  // that and gives up otherwise).
  std::optional<uint64_t> bias;
  for (uint64_t i = 0; i < ai.phnum && !bias; ++i) {
    Elf64_Phdr p = phdr_at(i);
    if (p.p_type == PT_PHDR) bias = ai.phdr - p.p_vaddr;
  }
  if (!bias) {
    // Fallback for unusual linkers: the ELF header is mapped by the
    // PT_LOAD with file offset 0 and, in practice, the program headers
    // follow it directly (e_phoff == sizeof(Elf64_Ehdr)). Only trust that
    // guess if an ELF header with exactly that layout is found there.
    for (uint64_t i = 0; i < ai.phnum && !bias; ++i) {
      Elf64_Phdr p = phdr_at(i);
      if (p.p_type != PT_LOAD || p.p_offset != 0) continue;
      uint64_t ehdr_addr = ai.phdr - sizeof(Elf64_Ehdr);
      auto eh = read_exact(read, ehdr_addr, sizeof(Elf64_Ehdr));
      if (!eh) break;
      Elf64_Ehdr e;
      std::memcpy(&e, eh->data(), sizeof e);
      if (std::memcmp(e.e_ident, ELFMAG, SELFMAG) == 0 && e.e_ident[EI_CLASS] == ELFCLASS64 &&
          e.e_phoff == sizeof(Elf64_Ehdr) && e.e_phnum == ai.phnum)
        bias = ehdr_addr - p.p_vaddr;
    }
  }
  if (!bias) return make_error(ENOENT, "cannot determine the load bias (no PT_PHDR)");

  std::optional<uint64_t> dynamic;
  for (uint64_t i = 0; i < ai.phnum && !dynamic; ++i) {
    Elf64_Phdr p = phdr_at(i);
    if (p.p_type == PT_DYNAMIC) dynamic = *bias + p.p_vaddr;
  }
  if (!dynamic) return make_error(ENOENT, "no PT_DYNAMIC (statically linked program?)");

  // Like gdbserver: the first DT_DEBUG counts, DT_NULL or an unreadable
  // entry ends the search.
  for (int i = 0; i < kMaxDynEntries; ++i) {
    auto d = read_exact(read, *dynamic + static_cast<uint64_t>(i) * sizeof(Elf64_Dyn), sizeof(Elf64_Dyn));
    if (!d) break;
    uint64_t tag = load_u64(*d, 0);
    if (tag == DT_NULL) break;
    if (tag == DT_DEBUG) return load_u64(*d, 8);
  }
  return make_error(ENOENT, "no DT_DEBUG in the dynamic section");
}

// Parses a /proc/PID/maps line: "start-end perms offset dev inode   path".
struct MapsLine {
  uint64_t start = 0, end = 0;
  std::string perms, name;
};

std::optional<MapsLine> parse_maps_line(const std::string& line) {
  MapsLine m;
  unsigned long long start = 0, end = 0;
  char perms[8] = {};
  int name_at = -1;
  // %n after the inode tells where the path (which may contain spaces, or
  // be absent) starts.
  if (std::sscanf(line.c_str(), "%llx-%llx %7s %*s %*s %*s%n", &start, &end, perms, &name_at) < 3 || name_at < 0)
    return std::nullopt;
  m.start = start;
  m.end = end;
  m.perms = perms;
  std::size_t p = static_cast<std::size_t>(name_at);
  while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
  m.name = line.substr(p);
  return m;
}

}  // namespace

Result<std::string> read_auxv(int pid) { return read_proc_file("/proc/" + std::to_string(pid) + "/auxv"); }

Result<std::string> exec_file(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/exe";
  // readlink doesn't say whether it truncated, so grow until it fits.
  std::string buf(PATH_MAX, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) {
      int err = errno;
      return make_error(err, path + ": " + errno_text(err));
    }
    if (static_cast<std::size_t>(n) < buf.size()) {
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
    if (buf.size() >= (1u << 20)) return make_error(ENAMETOOLONG, path + ": link target too long");
    buf.resize(buf.size() * 2);
  }
}

Result<Svr4Annex> parse_svr4_annex(const std::string& annex) {
  Svr4Annex out;
  std::size_t pos = 0;
  while (pos < annex.size()) {
    std::size_t eq = annex.find('=', pos);
    if (eq == std::string::npos) break;
    std::size_t end = annex.find(';', eq);
    if (end == std::string::npos) end = annex.size();
    std::string key = annex.substr(pos, eq - pos);
    uint64_t* field = key == "lmid" ? &out.lmid : key == "start" ? &out.start : key == "prev" ? &out.prev : nullptr;
    if (field) {
      uint64_t v = 0;
      for (std::size_t i = eq + 1; i < end; ++i) {
        char c = annex[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return make_error(EINVAL, "bad hex in libraries-svr4 annex: " + annex);
        if (v >> 60) return make_error(EINVAL, "address too large in libraries-svr4 annex: " + annex);
        v = v << 4 | static_cast<uint64_t>(d);
      }
      *field = v;
    }
    pos = end + 1;
  }
  return out;
}

namespace {

// Collects <library> elements across link_map chains, with one budget and
// one visited set for the whole document so that no combination of
// corrupt chains can loop or grow without bound.
struct LinkMapWalk {
  const MemoryReader& read;
  std::string libs;
  int budget = kMaxLinkMaps;
  std::unordered_set<uint64_t> seen;

  // gdbserver's read_link_map: follows l_next from lm_addr, whose l_prev
  // must be lm_prev; emits every entry with a non-empty name.
  void chain(uint64_t lmid, uint64_t lm_addr, uint64_t lm_prev) {
    while (lm_addr != 0 && budget-- > 0) {
      // l_addr@0, l_name@8, l_ld@16, l_next@24, l_prev@32 (the public
      // part of glibc's struct link_map); one read for all five.
      auto lm = read_exact(read, lm_addr, 40);
      if (!lm) return;
      uint64_t l_addr = load_u64(*lm, 0), l_name = load_u64(*lm, 8), l_ld = load_u64(*lm, 16);
      uint64_t l_next = load_u64(*lm, 24), l_prev = load_u64(*lm, 32);
      // gdbserver's "Corrupted shared library list" check; together with
      // `seen` it also ends cycles.
      if (l_prev != lm_prev || !seen.insert(lm_addr).second) return;
      std::string name = read_c_string(read, l_name);
      // Nameless entries are skipped, as gdbserver does (typically the
      // vdso on older glibc, or entries being set up by dlopen).
      if (!name.empty()) {
        libs += "<library name=\"";
        xml_escape_append(libs, name);
        libs += "\" lm=\"" + rsp::hex_0x(lm_addr) + "\" l_addr=\"" + rsp::hex_0x(l_addr) + "\" l_ld=\"" + rsp::hex_0x(l_ld) +
                "\" lmid=\"" + rsp::hex_0x(lmid) + "\"/>";
      }
      lm_prev = lm_addr;
      lm_addr = l_next;
    }
  }
};

// glibc's DL_NNS is 16; anything beyond a generous multiple is corruption.
constexpr int kMaxNamespaces = 64;

}  // namespace

Result<std::string> libraries_svr4(const std::string& auxv, const MemoryReader& read) {
  return libraries_svr4(auxv, read, Svr4Annex{});
}

// Follows gdbserver 13's linux_process_target::qxfer_libraries_svr4: every
// namespace reachable from the main r_debug (r_version >= 2 chains them via
// r_debug_extended.r_next), each library tagged with its namespace's
// r_debug address as lmid. One deliberate difference: a list without
// libraries is written as a self-closing element (as gdbserver before 13
// did) instead of an empty element pair; both parse the same.
Result<std::string> libraries_svr4(const std::string& auxv, const MemoryReader& read, const Svr4Annex& annex) {
  LinkMapWalk walk{read, {}, kMaxLinkMaps, {}};
  std::optional<uint64_t> main_lm;

  if (annex.start != 0) {
    // Incremental update: just that chain, no main-lm.
    walk.chain(annex.lmid, annex.start, annex.prev);
  } else {
    // No DT_DEBUG at all: gdbserver answers E01, since it never appears.
    auto first = find_r_debug(auxv, read);
    if (!first.ok()) return first.error();
    std::unordered_set<uint64_t> namespaces;
    uint64_t r_debug = *first;
    // r_debug == 0: ld.so hasn't filled in DT_DEBUG yet, empty list.
    while (r_debug != 0 && static_cast<int>(namespaces.size()) < kMaxNamespaces &&
           namespaces.insert(r_debug).second) {
      auto ver = read_exact(read, r_debug, 4);
      if (!ver) break;
      auto version = static_cast<int32_t>(load_u32(*ver, 0));
      if (version < 1) break;  // not initialized or not glibc's layout
      auto r_map = read_u64(read, r_debug + 8);
      if (!r_map) break;
      uint64_t lm_addr = *r_map, lm_prev = 0;
      if (r_debug == *first && lm_addr != 0) {
        // The main namespace's first entry is the program itself: it is
        // main-lm, never a <library>, even though it may have a name.
        main_lm = lm_addr;
        walk.seen.insert(lm_addr);
        auto next = read_u64(read, lm_addr + 24);
        if (!next) break;
        lm_prev = lm_addr;
        lm_addr = *next;
      }
      walk.chain(r_debug, lm_addr, lm_prev);
      if (version < 2) break;
      // r_debug_extended: r_version, r_map, r_brk, r_state, r_ldbase, r_next@40.
      auto r_next = read_u64(read, r_debug + 40);
      if (!r_next) break;
      r_debug = *r_next;
    }
  }

  std::string doc = "<library-list-svr4 version=\"1.0\"";
  if (main_lm) doc += " main-lm=\"" + rsp::hex_0x(*main_lm) + "\"";
  if (walk.libs.empty()) return doc + "/>";
  return doc + ">" + walk.libs + "</library-list-svr4>";
}

Result<MemoryRegion> memory_region(int pid, uint64_t addr) {
  auto maps = read_proc_file("/proc/" + std::to_string(pid) + "/maps");
  if (!maps.ok()) return maps.error();

  // The kernel lists mappings in ascending address order, but don't rely
  // on it: track the lowest mapping start above addr.
  std::optional<uint64_t> next_start;
  std::istringstream in(*maps);
  std::string line;
  while (std::getline(in, line)) {
    auto m = parse_maps_line(line);
    if (!m || m->end <= m->start) continue;
    if (addr >= m->start && addr < m->end) {
      MemoryRegion r;
      r.start = m->start;
      r.size = m->end - m->start;
      r.mapped = true;
      r.read = m->perms.size() > 0 && m->perms[0] == 'r';
      r.write = m->perms.size() > 1 && m->perms[1] == 'w';
      r.exec = m->perms.size() > 2 && m->perms[2] == 'x';
      r.name = m->name;
      return r;
    }
    if (m->start > addr && (!next_start || m->start < *next_start)) next_start = m->start;
  }
  MemoryRegion r;
  r.start = addr;
  r.mapped = false;
  // Up to the next mapping, or to the end of the 64-bit address space
  // (2^64 - addr, computed modulo 2^64; addr 0 with no mappings at all
  // yields 0, which MemoryRegion documents as "extent unknown").
  r.size = next_start ? *next_start - addr : (0 - addr);
  return r;
}

std::string thread_name(int pid, int tid) {
  auto comm = read_proc_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm");
  if (!comm.ok()) return "";
  std::string s = std::move(*comm);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace dbgstub::procdocs

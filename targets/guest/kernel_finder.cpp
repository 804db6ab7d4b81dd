#include "targets/guest/kernel_finder.h"
#include "protocol/rsp/hex.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace dbgstub::guest {
namespace {

// How far past the base the token table is looked for: kallsyms sits in
// .rodata, after the kernel's text (14 MiB for Debian 12's kernel).
constexpr uint64_t kMaxImage = 128ull << 20;
constexpr const char* kCacheMagic = "dbgstub-kallsyms-cache 1";

bool mapped(const ReadMemory& read, uint64_t addr) {
  auto r = read(addr, 1);
  return r && r->size() == 1;
}

const KallsymsEntry* by_name(const std::vector<KallsymsEntry>& syms, const std::string& name) {
  for (auto& e : syms)
    if (e.name == name) return &e;
  return nullptr;
}

Result<std::string> read_banner(const ReadMemory& read, uint64_t addr) {
  auto r = read(addr, 256);
  if (!r) return r.error();
  std::string s = r->substr(0, r->find('\0'));
  if (s.rfind("Linux version ", 0) != 0) return make_error(22, "no kernel banner at " + rsp::hex_u64(addr));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string cache_file(const std::string& dir, uint64_t base) { return dir + "/" + rsp::hex_u64(base) + ".kallsyms"; }

// The cache file: magic, the banner's address and text, then kallsyms lines.
std::optional<FoundKernel> load_cache(const ReadMemory& read, const std::string& dir, uint64_t base) {
  std::ifstream in(cache_file(dir, base));
  if (!in) return std::nullopt;
  std::string magic, addr_line, banner;
  if (!std::getline(in, magic) || magic != kCacheMagic || !std::getline(in, addr_line) || !std::getline(in, banner))
    return std::nullopt;
  uint64_t banner_at = std::strtoull(addr_line.c_str(), nullptr, 16);
  auto now = read_banner(read, banner_at);
  if (!now || *now != banner) return std::nullopt;  // another kernel at the same base
  FoundKernel k;
  k.base = base;
  k.slide = static_cast<int64_t>(base - kKernelLinkBase);
  k.banner = banner;
  k.from_cache = true;
  for (std::string line; std::getline(in, line);) {
    KallsymsEntry e;
    char type = 0;
    unsigned long long a = 0;
    int used = 0;
    if (std::sscanf(line.c_str(), "%llx %c %n", &a, &type, &used) < 2 || used <= 0) return std::nullopt;
    e.addr = a;
    e.type = type;
    e.name = line.substr(static_cast<std::size_t>(used));
    k.symbols.push_back(std::move(e));
  }
  if (k.symbols.empty()) return std::nullopt;
  return k;
}

void save_cache(const std::string& dir, const FoundKernel& k, uint64_t banner_at) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string path = cache_file(dir, k.base), tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return;
    out << kCacheMagic << "\n" << rsp::hex_u64(banner_at) << "\n" << k.banner << "\n" << kallsyms_text(k.symbols);
    if (!out) return;
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace

bool in_kernel_image_range(uint64_t addr) { return addr >= kKernelMapStart && addr < kKernelMapEnd; }

Result<uint64_t> find_kernel_base(const ReadMemory& read, std::optional<uint64_t> pc) {
  if (pc && in_kernel_image_range(*pc) && mapped(read, *pc & ~(kKernelAlign - 1))) {
    uint64_t base = *pc & ~(kKernelAlign - 1);
    while (base - kKernelAlign >= kKernelMapStart && mapped(read, base - kKernelAlign)) base -= kKernelAlign;
    return base;
  }
  for (uint64_t a = kKernelMapStart; a < kKernelMapEnd; a += kKernelAlign)
    if (mapped(read, a)) return a;
  return make_error(2, "no kernel image mapped where x86-64 Linux puts it (is the vCPU in a Linux guest's "
                       "kernel page tables?)");
}

std::string default_kallsyms_cache_dir() {
  if (const char* d = std::getenv("DBGSTUB_KALLSYMS_CACHE")) return d;
  // systemd's CacheDirectory= (the unit's), the first if it lists several.
  if (const char* c = std::getenv("CACHE_DIRECTORY"); c && *c) {
    std::string s = c;
    return s.substr(0, s.find(':')) + "/kallsyms";
  }
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/dbgstub/kallsyms";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/dbgstub/kallsyms";
  return "";
}

std::string kallsyms_text(const std::vector<KallsymsEntry>& symbols) {
  std::string out;
  out.reserve(symbols.size() * 40);
  char buf[40];
  for (auto& e : symbols) {
    std::snprintf(buf, sizeof buf, "%016llx %c ", static_cast<unsigned long long>(e.addr), e.type);
    out += buf;
    out += e.name;
    out += '\n';
  }
  return out;
}

Result<FoundKernel> find_kernel(const ReadMemory& read, std::optional<uint64_t> pc, const std::string& cache_dir) {
  auto base = find_kernel_base(read, pc);
  if (!base) return base.error();
  if (!cache_dir.empty())
    if (auto cached = load_cache(read, cache_dir, *base)) return std::move(*cached);
  uint64_t end = std::min(kKernelMapEnd, *base + kMaxImage);
  auto tt = find_token_table_fast(read, *base, end);
  if (!tt) return tt.error();
  auto tables = locate_kallsyms(read, *tt);
  if (!tables) return tables.error();
  auto syms = read_kallsyms(read, *tables);
  if (!syms) return syms.error();
  FoundKernel k;
  k.base = *base;
  k.slide = static_cast<int64_t>(*base - kKernelLinkBase);
  k.symbols = std::move(*syms);
  // The tables must describe this image: their _text is the base found.
  const KallsymsEntry* text = by_name(k.symbols, "_text");
  if (!text || text->addr != *base)
    return make_error(22, "the kallsyms found do not match the kernel at " + rsp::hex_u64(*base) +
                              (text ? " (their _text is " + rsp::hex_u64(text->addr) + ")" : " (no _text)"));
  const KallsymsEntry* banner = by_name(k.symbols, "linux_banner");
  if (banner)
    if (auto b = read_banner(read, banner->addr)) k.banner = *b;
  spdlog::info("guest: kernel at {:#x} (KASLR slide {:#x}), {} kallsyms symbols ({} order{}{})", *base, k.slide,
               k.symbols.size(), tables->order_6_4 ? "6.4+" : "pre-6.4",
               tables->seqs_of_names ? ", seqs_of_names" : "", tables->base_relative ? "" : ", absolute");
  if (!cache_dir.empty() && banner && !k.banner.empty()) save_cache(cache_dir, k, banner->addr);
  return k;
}

}  // namespace dbgstub::guest

// Kernel symbols from /proc/kallsyms, and WinDbg's ln and x over them.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "targets/local_kernel/local_kernel_internal.h"

namespace dbgstub::lk {

const char* const kHiddenAddressesNote =
    "note: /proc/kallsyms shows every address as 0: symbol addresses are hidden from this user "
    "(run dbgstub as root, and with kernel.kptr_restrict set to 0 or 1)";

namespace {

constexpr uint64_t kPastLastSymbol = 0x100000;

bool is_core_module(const std::string& m) { return m.empty() || m == "nt" || m == "vmlinux"; }

bool module_matches(const std::optional<std::string>& want, const std::string& have) {
  if (!want) return true;
  if (is_core_module(*want)) return have.empty();
  return *want == have;
}

std::string hex16(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Splits "module!name" (no '!' = any module).
std::pair<std::optional<std::string>, std::string> split_module(const std::string& s) {
  auto bang = s.find('!');
  if (bang == std::string::npos) return {std::nullopt, s};
  return {s.substr(0, bang), s.substr(bang + 1)};
}

// Of several symbols at one address, the one to name it by: a global
// symbol rather than a local one, and not an internal "__" alias.
std::size_t preferred_at(const std::vector<KernelSymbol>& syms, std::size_t idx) {
  uint64_t addr = syms[idx].addr;
  std::size_t first = idx;
  while (first > 0 && syms[first - 1].addr == addr) --first;
  std::size_t best = first;
  int best_score = -1;
  for (std::size_t i = first; i < syms.size() && syms[i].addr == addr; ++i) {
    const auto& s = syms[i];
    int score = (std::isupper(static_cast<unsigned char>(s.type)) ? 2 : 0) + (s.name.rfind("__", 0) == 0 ? 0 : 1);
    if (score > best_score) best = i, best_score = score;
  }
  return best;
}

// Orders by_name_ entries (indices into syms) against a name.
struct NameLess {
  const std::vector<KernelSymbol>& syms;
  bool operator()(std::size_t i, const std::string& name) const { return syms[i].name < name; }
  bool operator()(const std::string& name, std::size_t i) const { return name < syms[i].name; }
};

}  // namespace

SymbolTable SymbolTable::parse(std::string_view text) {
  SymbolTable t;
  std::size_t pos = 0;
  bool any_nonzero = false;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string line(text.substr(pos, eol - pos));
    pos = eol + 1;
    std::istringstream in(line);
    std::string addr, type, name, module;
    if (!(in >> addr >> type >> name) || type.size() != 1) continue;
    auto a = parse_address(addr);
    if (!a) continue;
    if (in >> module) {
      if (module.size() < 2 || module.front() != '[' || module.back() != ']') continue;
      module = module.substr(1, module.size() - 2);
    }
    any_nonzero = any_nonzero || *a != 0;
    t.syms_.push_back(KernelSymbol{*a, type[0], std::move(name), std::move(module)});
  }
  t.hidden_ = !t.syms_.empty() && !any_nonzero;
  std::stable_sort(t.syms_.begin(), t.syms_.end(),
                   [](const KernelSymbol& a, const KernelSymbol& b) { return a.addr < b.addr; });
  t.by_name_.resize(t.syms_.size());
  for (std::size_t i = 0; i < t.by_name_.size(); ++i) t.by_name_[i] = i;
  // Stable on indices in address order: equal names stay in address order.
  std::stable_sort(t.by_name_.begin(), t.by_name_.end(),
                   [&s = t.syms_](std::size_t a, std::size_t b) { return s[a].name < s[b].name; });
  return t;
}

Result<SymbolTable> SymbolTable::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(errno ? errno : 2, "cannot read " + path + ": " + std::strerror(errno ? errno : 2));
  std::ostringstream ss;
  ss << f.rdbuf();
  SymbolTable t = parse(ss.str());
  if (t.empty()) return make_error(61, path + " lists no symbols");
  return t;
}

std::optional<std::size_t> SymbolTable::at_or_below(uint64_t addr) const {
  auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                             [](uint64_t a, const KernelSymbol& s) { return a < s.addr; });
  if (it == syms_.begin()) return std::nullopt;
  return static_cast<std::size_t>(it - syms_.begin() - 1);
}

std::vector<const KernelSymbol*> SymbolTable::find(const std::string& name, std::optional<std::string> module) const {
  std::vector<const KernelSymbol*> out;
  auto [lo, hi] = std::equal_range(by_name_.begin(), by_name_.end(), name, NameLess{syms_});
  for (auto it = lo; it != hi; ++it)
    if (module_matches(module, syms_[*it].module)) out.push_back(&syms_[*it]);
  return out;
}

std::string display_name(const KernelSymbol& s) { return s.module.empty() ? s.name : s.module + "!" + s.name; }

bool wildcard_match(std::string_view p, std::string_view t) {
  std::size_t pi = 0, ti = 0;
  std::size_t star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi, ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::optional<uint64_t> parse_address(std::string_view text) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  int digits = 0;
  for (char c : text) {
    if (c == '`') continue;
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    if (v >> 60) return std::nullopt;  // more than 64 bits
    v = (v << 4) | static_cast<uint64_t>(d);
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return v;
}

CommandOutput list_nearest(const SymbolTable& table, const std::string& raw_args) {
  const std::string usage = "Usage: ln ADDRESS | ln [module!]SYMBOL   (ADDRESS in hex, e.g. ln ffffffff81000000)\n";
  std::string args = trim(raw_args);
  if (args.empty() || args.find_first_of(" \t") != std::string::npos) return {false, usage};
  if (table.addresses_hidden()) return {false, std::string(kHiddenAddressesNote) + "\n"};
  uint64_t addr;
  if (auto a = parse_address(args)) {
    addr = *a;
  } else {
    auto [module, name] = split_module(args);
    if (name.empty() || name.find_first_of("*?") != std::string::npos) return {false, usage};
    auto found = table.find(name, module);
    if (found.empty()) return {false, "Couldn't resolve '" + args + "' (not a hex address or a kernel symbol)\n" + usage};
    addr = found.front()->addr;
  }
  const auto& syms = table.symbols();
  auto below = table.at_or_below(addr);
  if (!below) return {false, "No symbol at or below " + hex16(addr) + "\n"};
  // Past the last symbol there is nothing to measure an offset from.
  if (*below + 1 == syms.size() && addr - syms[*below].addr >= kPastLastSymbol)
    return {false, "No symbol near " + hex16(addr) + " (past the last kernel symbol)\n"};
  std::size_t idx = preferred_at(syms, *below);
  const KernelSymbol& s = syms[idx];
  std::string out = "(" + hex16(s.addr) + ")   " + display_name(s);
  if (addr != s.addr) {
    char off[32];
    std::snprintf(off, sizeof off, "+0x%llx", static_cast<unsigned long long>(addr - s.addr));
    out += off;
  }
  std::size_t next = *below + 1;
  if (next < syms.size()) {
    out += "   |  (" + hex16(syms[next].addr) + ")   " + display_name(syms[preferred_at(syms, next)]);
  }
  out += "\n";
  if (addr == s.addr) {
    out += "Exact matches:\n";
    std::size_t first = *below;
    while (first > 0 && syms[first - 1].addr == addr) --first;
    for (std::size_t i = first; i < syms.size() && syms[i].addr == addr; ++i) out += "    " + display_name(syms[i]) + "\n";
  }
  return {true, out};
}

CommandOutput examine_symbols(const SymbolTable& table, const std::string& raw_args, std::size_t cap) {
  const std::string usage =
      "Usage: x [module!]PATTERN   (wildcards * and ?; module: a kernel module, or nt/vmlinux for the kernel "
      "image; e.g. x nt!*schedule)\n";
  std::string args = trim(raw_args);
  if (args.empty() || args.find_first_of(" \t") != std::string::npos) return {false, usage};
  auto [module, pattern] = split_module(args);
  if (pattern.empty() || (module && module->empty())) return {false, usage};
  std::string out;
  if (table.addresses_hidden()) out += std::string(kHiddenAddressesNote) + "\n";
  std::size_t matches = 0;
  for (const auto& s : table.symbols()) {
    if (module) {
      if (is_core_module(*module)) {
        if (!s.module.empty()) continue;
      } else if (!wildcard_match(*module, s.module)) {
        continue;
      }
    }
    if (!wildcard_match(pattern, s.name)) continue;
    if (++matches <= cap) out += hex16(s.addr) + " " + display_name(s) + "\n";
  }
  if (matches > cap)
    out += "(" + std::to_string(matches - cap) + " more matches not shown: " + std::to_string(matches) +
           " in all, the first " + std::to_string(cap) + " listed; narrow the pattern)\n";
  if (matches == 0) out += "No symbols match '" + args + "'\n";
  return {true, out};
}

}  // namespace dbgstub::lk

#include "targets/guest/kallsyms_reader.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace dbgstub::guest {
namespace {

constexpr std::size_t kChunk = 0x10000;
// Bounds that keep a corrupt image from making us read or allocate without
// end: no kernel has 4 million symbols or tables of 24 MiB.
constexpr uint32_t kMaxSyms = 1u << 22;
constexpr uint64_t kMaxBack = 24ull << 20;
// A block of 256 names is at least 512 bytes (a length and one token
// each) and, with names of up to 511 tokens, at most 256 * 513.
constexpr uint64_t kMinBlock = 512, kMaxBlock = 256ull * 513;

uint64_t align8(uint64_t v) { return (v + 7) & ~uint64_t{7}; }

uint64_t le(std::string_view b, std::size_t at, std::size_t width) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}

Result<std::string> read_exact(const ReadMemory& read, uint64_t addr, std::size_t len) {
  std::string out;
  out.reserve(std::min(len, kChunk));  // not len: a corrupt size must not allocate before a read fails
  while (out.size() < len) {
    std::size_t n = std::min(kChunk, len - out.size());
    auto part = read(addr + out.size(), n);
    if (!part) return part.error();
    if (part->size() != n) return make_error(5, "short read of guest memory");
    out += *part;
  }
  return out;
}

// Guest memory below `top`, read downward in chunks as far as asked.
class Below {
 public:
  Below(const ReadMemory& read, uint64_t top) : read_(read), top_(top), lo_(top) {}
  // Makes [addr, top) available; false past the bounds or on a read error.
  bool ensure(uint64_t addr) {
    if (addr >= lo_) return true;
    if (addr > top_ || top_ - addr > kMaxBack) return false;
    uint64_t want = std::max<uint64_t>(lo_ - addr, kChunk * 4);
    uint64_t floor = top_ > kMaxBack ? top_ - kMaxBack : 0;
    want = std::min<uint64_t>(want, lo_ - floor);
    if (want == 0 || want > lo_) return false;
    auto more = read_exact(read_, lo_ - want, static_cast<std::size_t>(want));
    if (!more && want > lo_ - addr) {  // read ahead runs into unmapped memory: just what was asked
      want = lo_ - addr;
      more = read_exact(read_, addr, static_cast<std::size_t>(want));
    }
    if (!more) return false;
    data_ = *more + data_;
    lo_ -= want;
    return addr >= lo_;
  }
  std::optional<uint64_t> u(uint64_t addr, std::size_t width) {
    if (addr + width > top_ || addr + width < addr || !ensure(addr)) return std::nullopt;
    return le(data_, static_cast<std::size_t>(addr - lo_), width);
  }
  std::string_view view(uint64_t from) {  // [from, top) after ensure(from)
    return std::string_view(data_).substr(static_cast<std::size_t>(from - lo_));
  }

 private:
  const ReadMemory& read_;
  uint64_t top_, lo_;
  std::string data_;
};

struct Tokens {
  std::vector<std::string> tok;  // 256
  uint64_t end = 0;              // just past the table (the last NUL + 1)
};

// The 256 tokens at `tt` (from `bytes`, which starts at `tt`), confirmed by
// the token index that follows them.
std::optional<Tokens> parse_tokens(std::string_view bytes, uint64_t tt, uint64_t* index_at) {
  Tokens t;
  std::vector<uint64_t> offs;
  std::size_t p = 0;
  for (int i = 0; i < 256; ++i) {
    std::size_t e = bytes.find('\0', p);
    if (e == std::string_view::npos) return std::nullopt;
    offs.push_back(p);
    t.tok.emplace_back(bytes.substr(p, e - p));
    p = e + 1;
  }
  t.end = tt + p;
  // The index is the next table: aligned to 8 (4 or 2 on other builds).
  for (uint64_t al : {8, 4, 2}) {
    uint64_t ti = (t.end + al - 1) & ~(al - 1);
    std::size_t at = static_cast<std::size_t>(ti - tt);
    if (at + 512 > bytes.size()) continue;
    bool same = true;
    for (int i = 0; i < 256 && same; ++i) same = le(bytes, at + 2 * i, 2) == offs[static_cast<std::size_t>(i)];
    if (same) {
      *index_at = ti;
      return t;
    }
  }
  return std::nullopt;
}

// From the start of the "0" token back over the 48 tokens before it.
std::optional<uint64_t> token_table_start(std::string_view bytes, std::size_t zero_at) {
  std::size_t j = zero_at;
  for (int k = 0; k < 48; ++k) {
    if (j < 1) return std::nullopt;
    std::size_t prev_end = j - 1;  // the NUL of the token before
    if (bytes[prev_end] != '\0') return std::nullopt;
    std::size_t nul = prev_end == 0 ? std::string_view::npos : bytes.rfind('\0', prev_end - 1);
    if (nul == std::string_view::npos) return std::nullopt;
    j = nul + 1;
  }
  return j;
}

// Checks a candidate token table (the "0" token at `zero`): returns its start.
std::optional<uint64_t> confirm_token_table(const ReadMemory& read, uint64_t zero) {
  constexpr uint64_t before = 4096, after = 8192;
  if (zero < before) return std::nullopt;
  auto r = read_exact(read, zero - before, before + after);
  if (!r) {  // near the end of what is mapped: less after it
    r = read_exact(read, zero - before, before + 2048);
    if (!r) return std::nullopt;
  }
  auto start = token_table_start(*r, static_cast<std::size_t>(before));
  if (!start) return std::nullopt;
  uint64_t tt = zero - before + *start;
  uint64_t ti = 0;
  if (!parse_tokens(std::string_view(*r).substr(static_cast<std::size_t>(*start)), tt, &ti)) return std::nullopt;
  return tt;
}

const std::string& digits_pattern() {
  static const std::string p = [] {
    std::string s;
    for (char c = '0'; c <= '9'; ++c) s += std::string(1, c) + '\0';
    return s;
  }();
  return p;
}

struct Markers {
  uint64_t at = 0;
  uint32_t count = 0;
  uint64_t last = 0;  // offset in names of the last block
};

// An array of `k` markers of `width` bytes at `ms`: 0 first, then rising
// by a plausible block size each.
std::optional<Markers> markers_at(Below& mem, uint64_t ms, uint32_t k, std::size_t width) {
  auto first = mem.u(ms, width);
  if (!first || *first != 0) return std::nullopt;
  // The table's padding to 8 bytes is zeros: that tells k markers from
  // k + 1 when both round up to the same size.
  if ((uint64_t{k} * width) % 8) {
    auto pad = mem.u(ms + uint64_t{k} * width, 4);
    if (!pad || *pad != 0) return std::nullopt;
  }
  uint64_t prev = 0;
  for (uint32_t i = 1; i < k; ++i) {
    auto v = mem.u(ms + uint64_t{i} * width, width);
    if (!v || *v < prev + kMinBlock || *v > prev + kMaxBlock) return std::nullopt;
    prev = *v;
  }
  return Markers{ms, k, prev};
}

uint32_t blocks(uint32_t n) { return (n + 255) / 256; }

// Walks `n` names from `names` (in `mem`): true when each block starts where
// its marker says and the names end where the markers begin (aligned).
bool names_fit(Below& mem, uint64_t names, uint32_t n, const Markers& m, std::size_t mwidth, uint64_t* end_out) {
  if (!mem.ensure(names)) return false;
  std::string_view v = mem.view(names);
  uint64_t limit = m.at - names;
  std::size_t p = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (i % 256 == 0) {
      auto mark = mem.u(m.at + uint64_t{i / 256} * mwidth, mwidth);
      if (!mark || *mark != p) return false;
    }
    if (p >= limit) return false;
    std::size_t len = static_cast<unsigned char>(v[p++]);
    if (len & 0x80) {
      if (p >= limit) return false;
      len = (len & 0x7f) | (static_cast<std::size_t>(static_cast<unsigned char>(v[p++])) << 7);
    }
    if (len == 0) return false;
    p += len;
    if (p > limit) return false;
  }
  *end_out = names + p;
  return align8(names + p) == m.at;
}

bool kernel_address(uint64_t v) { return v >= 0xffff800000000000ull; }

}  // namespace

uint64_t kallsyms_address(const KallsymsTables& t, uint32_t raw) {
  if (!t.base_relative) return raw;  // not used: absolute tables hold u64s
  if (!t.absolute_percpu) return t.relative_base + raw;
  int32_t s = static_cast<int32_t>(raw);
  if (s >= 0) return static_cast<uint64_t>(s);  // a per-CPU offset, not relocated
  return t.relative_base - 1 - static_cast<uint64_t>(static_cast<int64_t>(s));
}

Result<uint64_t> find_token_table(const ReadMemory& read, uint64_t start, uint64_t end) {
  const std::string& pat = digits_pattern();
  std::string carry;
  uint64_t carry_at = start;
  for (uint64_t a = start; a < end && a >= start; a += kChunk) {
    std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(kChunk, end - a));
    auto part = read(a, n);
    if (!part || part->size() != n) {  // a hole (freed init memory, a guard page)
      carry.clear();
      carry_at = a + n;
      continue;
    }
    std::string buf = carry + *part;
    for (std::size_t at = buf.find(pat); at != std::string::npos; at = buf.find(pat, at + 1)) {
      // "0" must be a whole token: the byte before it ends the previous one.
      if (at == 0 || buf[at - 1] != '\0') continue;
      if (auto tt = confirm_token_table(read, carry_at + at)) return *tt;
    }
    std::size_t keep = std::min(buf.size(), pat.size());
    carry = buf.substr(buf.size() - keep);
    carry_at = a + n - keep;
  }
  return make_error(2, "no kallsyms token table in the guest kernel's image");
}

namespace {

// 16 u32s that read as kallsyms offsets: all stored negated (ABSOLUTE_PERCPU)
// or all plain, in address order, not all equal, each step under 1 MiB.
bool looks_like_offsets(std::string_view b) {
  if (b.size() < 64) return false;
  for (bool negated : {true, false}) {
    bool ok = true;
    int rising = 0;
    uint64_t prev = 0;
    for (std::size_t i = 0; i < 16 && ok; ++i) {
      uint32_t v = static_cast<uint32_t>(le(b, 4 * i, 4));
      if (negated != ((v >> 31) != 0)) ok = false;
      if (!negated && v > (256u << 20)) ok = false;
      uint64_t addr = negated ? uint64_t{0xffffffffu} - v : v;
      if (i > 0 && (addr < prev || addr - prev > (1u << 20))) ok = false;
      if (i > 0 && addr > prev) ++rising;
      prev = addr;
    }
    if (ok && rising >= 8) return true;
  }
  return false;
}

}  // namespace

Result<uint64_t> find_token_table_fast(const ReadMemory& read, uint64_t start, uint64_t end) {
  constexpr uint64_t kStride = 0x10000, kAhead = 8ull << 20, kBehind = 8ull << 20;
  std::set<uint64_t> scanned;  // windows (of kChunk) already searched
  auto scan = [&](uint64_t lo, uint64_t hi) -> std::optional<uint64_t> {
    lo = std::max(lo, start) & ~(kChunk - 1);
    hi = std::min(hi, end);
    for (uint64_t w = lo; w < hi; w += kChunk) {
      if (!scanned.insert(w).second) continue;
      // Each window with a little of the next, so a table across the edge is seen.
      auto tt = find_token_table(read, w, std::min(end, w + kChunk + 64));
      if (tt) return *tt;
    }
    return std::nullopt;
  };
  int hints = 0;
  for (uint64_t a = start; a < end && a >= start && hints < 8; a += kStride) {
    auto b = read(a, 64);
    if (!b || !looks_like_offsets(*b)) continue;
    ++hints;
    // Before 6.4 the token table follows offsets, names and markers; from
    // 6.4 it comes right before the offsets.
    if (auto tt = scan(a, a + kAhead)) return *tt;
    for (uint64_t w = a; w > start && a - w < kBehind; w -= std::min(w - start, kChunk))
      if (auto tt = scan(w - std::min(w - start, kChunk), w)) return *tt;
    a += kAhead - kStride;  // that stretch was searched
  }
  return find_token_table(read, start, end);
}

Result<KallsymsTables> locate_kallsyms(const ReadMemory& read, uint64_t tt) {
  auto head = read_exact(read, tt, 8192);
  if (!head) head = read_exact(read, tt, 4096);
  if (!head) return make_error(head.error().code, "reading the kallsyms token table: " + head.error().message);
  KallsymsTables t;
  t.token_table = tt;
  if (!parse_tokens(*head, tt, &t.token_index)) return make_error(22, "no kallsyms token table at that address");

  Below mem(read, tt);
  // The markers end right before the token table, or before the 3-byte
  // seqs_of_names (6.2+, before 6.4) that sit between them.
  std::optional<Markers> m;
  std::size_t mwidth = 4;
  uint32_t kmax = blocks(kMaxSyms);
  for (uint32_t k = 1; k <= kmax && !m; ++k) {
    for (std::size_t w : {4, 8}) {
      uint64_t size = align8(uint64_t{k} * w);
      if (size > tt) break;
      if (auto found = markers_at(mem, tt - size, k, w)) {
        m = found;
        mwidth = w;
        break;
      }
    }
    if (!mem.ensure(tt - std::min<uint64_t>(tt, align8(uint64_t{k} * 8)))) break;
  }
  std::optional<uint64_t> seqs;
  if (!m) {
    for (uint32_t k = 1; k <= kmax && !m; ++k) {
      uint64_t last_size = 0;
      for (uint32_t n = (k - 1) * 256 + 1; n <= k * 256 && !m; ++n) {
        uint64_t s = align8(uint64_t{n} * 3);
        if (s == last_size) continue;
        last_size = s;
        uint64_t size = s + align8(uint64_t{k} * 4);
        if (size > tt || size > kMaxBack) break;
        if (auto found = markers_at(mem, tt - size, k, 4)) {
          m = found;
          seqs = tt - s;
        }
      }
      if (uint64_t{k} * 256 * 3 > kMaxBack) break;
      if (!mem.ensure(tt - std::min<uint64_t>(tt, align8(uint64_t{k} * 256 * 3 + uint64_t{k} * 4)))) break;
    }
  }
  if (!m) return make_error(22, "no kallsyms markers before the token table");
  t.markers = m->at;

  // kallsyms_num_syms sits right before the names (aligned to 8): try each
  // aligned slot where the last block, of up to 256 names, would fit.
  uint64_t hi = m->at - std::min<uint64_t>(m->at, m->last + 2);
  uint64_t lo = m->at - std::min<uint64_t>(m->at, m->last + kMaxBlock + 8);
  bool found = false;
  for (uint64_t p = hi & ~uint64_t{7}; p >= lo && p >= 8 && !found; p -= 8) {
    auto n = mem.u(p, 4);
    auto upper = mem.u(p + 4, 4);
    if (!n || !upper) break;
    if (*upper != 0 || *n == 0 || *n > kMaxSyms || blocks(static_cast<uint32_t>(*n)) != m->count) continue;
    if (seqs && *seqs != tt - align8(*n * 3)) continue;
    uint64_t end = 0;
    if (!names_fit(mem, p + 8, static_cast<uint32_t>(*n), *m, mwidth, &end)) continue;
    t.num_syms_at = p;
    t.names = p + 8;
    t.num_syms = static_cast<uint32_t>(*n);
    found = true;
  }
  if (!found) return make_error(22, "no kallsyms_num_syms and names that fit the markers");
  t.seqs_of_names = seqs;

  // The offsets: after the token index (6.4+), or before num_syms; or
  // u64 addresses before num_syms (no KALLSYMS_BASE_RELATIVE). Each guess
  // must give addresses in order, as the kernel sorts them.
  uint64_t n = t.num_syms;
  uint64_t after = align8(t.token_index + 512);
  std::vector<KallsymsTables> guesses;
  if (!seqs) {
    KallsymsTables g = t;
    g.order_6_4 = true;
    g.offsets = after;
    if (auto rb = read_exact(read, after + align8(4 * n), 8); rb && kernel_address(le(*rb, 0, 8))) {
      g.relative_base = le(*rb, 0, 8);
      guesses.push_back(g);
    }
  }
  if (t.num_syms_at >= 8 + align8(4 * n))
    if (auto rb = mem.u(t.num_syms_at - 8, 8); rb && kernel_address(*rb)) {
      KallsymsTables g = t;
      g.offsets = t.num_syms_at - 8 - align8(4 * n);
      g.relative_base = *rb;
      guesses.push_back(g);
    }
  if (t.num_syms_at >= 8 * n) {
    KallsymsTables g = t;
    g.base_relative = false;
    g.offsets = t.num_syms_at - 8 * n;
    guesses.push_back(g);
  }
  for (KallsymsTables& g : guesses) {
    std::size_t width = g.base_relative ? 4 : 8;
    auto offs = read_exact(read, g.offsets, static_cast<std::size_t>(width * n));
    if (!offs) continue;
    if (g.base_relative) {
      // With ABSOLUTE_PERCPU the kernel's own symbols are stored negated
      // (below zero), so most offsets have the top bit set.
      uint64_t negative = 0;
      for (uint64_t i = 0; i < n; ++i) negative += (le(*offs, static_cast<std::size_t>(4 * i), 4) >> 31) & 1;
      g.absolute_percpu = negative * 2 > n;
    }
    bool sorted = true;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n && sorted; ++i) {
      uint64_t raw = le(*offs, static_cast<std::size_t>(width * i), width);
      if (g.base_relative && g.absolute_percpu && !(raw >> 31)) continue;  // a per-CPU offset
      uint64_t a = g.base_relative ? kallsyms_address(g, static_cast<uint32_t>(raw)) : raw;
      sorted = a >= prev;
      prev = a;
    }
    if (sorted) return g;
  }
  return make_error(22, "no kallsyms offsets or addresses in address order were found");
}

Result<std::vector<KallsymsEntry>> read_kallsyms(const ReadMemory& read, const KallsymsTables& t) {
  if (t.num_syms == 0 || t.num_syms > kMaxSyms || t.markers <= t.names || t.markers - t.names > kMaxBack)
    return make_error(22, "inconsistent kallsyms tables");
  auto head = read_exact(read, t.token_table, static_cast<std::size_t>(t.token_index + 512 - t.token_table));
  if (!head) return make_error(head.error().code, "reading the kallsyms token table: " + head.error().message);
  uint64_t ti = 0;
  auto tokens = parse_tokens(*head, t.token_table, &ti);
  if (!tokens || ti != t.token_index) return make_error(22, "the kallsyms token table changed");
  auto names = read_exact(read, t.names, static_cast<std::size_t>(t.markers - t.names));
  if (!names) return make_error(names.error().code, "reading kallsyms_names: " + names.error().message);
  std::size_t width = t.base_relative ? 4 : 8;
  auto offs = read_exact(read, t.offsets, static_cast<std::size_t>(width * t.num_syms));
  if (!offs) return make_error(offs.error().code, "reading kallsyms_offsets: " + offs.error().message);

  std::vector<KallsymsEntry> out;
  out.reserve(t.num_syms);
  std::size_t p = 0;
  const std::string& nm = *names;
  for (uint32_t i = 0; i < t.num_syms; ++i) {
    if (p >= nm.size()) return make_error(22, "kallsyms_names ends early");
    std::size_t len = static_cast<unsigned char>(nm[p++]);
    if (len & 0x80) {
      if (p >= nm.size()) return make_error(22, "kallsyms_names ends early");
      len = (len & 0x7f) | (static_cast<std::size_t>(static_cast<unsigned char>(nm[p++])) << 7);
    }
    if (len == 0 || p + len > nm.size()) return make_error(22, "a kallsyms name runs past the table");
    std::string full;
    for (std::size_t k = 0; k < len; ++k) full += tokens->tok[static_cast<unsigned char>(nm[p + k])];
    p += len;
    if (full.empty()) return make_error(22, "an empty kallsyms name");
    KallsymsEntry e;
    e.type = full[0];
    e.name = full.substr(1);
    uint64_t raw = le(*offs, i * width, width);
    e.addr = t.base_relative ? kallsyms_address(t, static_cast<uint32_t>(raw)) : raw;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace dbgstub::guest

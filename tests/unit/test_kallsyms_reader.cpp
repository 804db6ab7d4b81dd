// kallsyms found and decoded in guest memory (targets/guest/kallsyms_reader,
// kernel_finder), over synthetic images laid out as the kernel's
// scripts/kallsyms.c writes them: both table orders (before and from 6.4),
// with and without seqs_of_names, relative (with and without absolute
// per-CPU symbols) and absolute addresses, two-byte name lengths. Truncated
// and corrupted images must give errors, never a crash (ASan/UBSan run
// these). A real kernel's tables are read by tests/integration/test_vm_symbols.py.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "targets/guest/kallsyms_reader.h"
#include "targets/guest/kernel_finder.h"

using namespace dbgstub;
using namespace dbgstub::guest;

namespace {

struct Sym {
  uint64_t addr;
  char type;
  std::string name;
  bool percpu = false;
};

struct Layout {
  bool order_6_4 = false;
  bool seqs = false;
  bool base_relative = true;
  bool absolute_percpu = true;
};

void put(std::string& b, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}
void pad8(std::string& b) {
  while (b.size() % 8) b += '\0';
}

// A memory image at `base`: junk (with a decoy digit run), the tables, junk.
struct Image {
  uint64_t base = 0;
  std::string bytes;
  uint64_t token_table = 0;
  ReadMemory reader() const {
    return [this](uint64_t addr, std::size_t len) -> Result<std::string> {
      if (addr < base || addr - base > bytes.size() || len > bytes.size() - (addr - base))
        return make_error(14, "unmapped");
      return bytes.substr(static_cast<std::size_t>(addr - base), len);
    };
  }
};

std::vector<Sym> sample_symbols(uint64_t text) {
  std::vector<Sym> s;
  s.push_back({0x1fb80, 'A', "current_task", true});
  s.push_back({0x2a000, 'A', "pcpu_hot", true});
  s.push_back({text, 'T', "_text"});
  std::mt19937 rng(7);
  uint64_t a = text + 0x1000;
  for (int i = 0; i < 900; ++i) {
    a += 16 + rng() % 512;
    std::string name = (i % 3 ? "do_sys_" : "__x64_sys_") + std::to_string(i) + (i % 5 ? "_task" : "");
    s.push_back({a, i % 7 ? 'T' : 't', name});
  }
  // A name long enough for a two-byte length (>= 128 tokens).
  std::string big;
  for (int i = 0; i < 300; ++i) big += static_cast<char>('a' + (rng() % 26));
  s.push_back({a += 64, 'T', big});
  s.push_back({a += 64, 'D', "linux_banner"});
  s.push_back({a += 4096, 'D', "init_task"});
  s.push_back({a += 64, 'R', "__start_BTF"});
  s.push_back({a += 8192, 'R', "__stop_BTF"});
  return s;
}

// Writes the tables as scripts/kallsyms.c does (64-bit: .balign 8 per label).
Image build(const std::vector<Sym>& syms, const Layout& l, uint64_t base = 0xffffffff81000000ull,
            std::size_t lead = 0x3000) {
  // Tokens: every character used stands for itself; the other codes are
  // multi-character tokens, as the compressor leaves them.
  std::set<unsigned char> used;
  for (auto& s : syms) {
    used.insert(static_cast<unsigned char>(s.type));
    for (char c : s.name) used.insert(static_cast<unsigned char>(c));
  }
  std::vector<std::string> tok(256);
  const char* multi[] = {"_task", "sys_", "__x64", "do_", "_sys", "current", "linux", "init", "_t", "x6"};
  std::size_t mi = 0, pair = 0;
  std::vector<unsigned char> letters(used.begin(), used.end());
  for (int c = 0; c < 256; ++c) {
    if (used.count(static_cast<unsigned char>(c))) tok[static_cast<std::size_t>(c)] = std::string(1, static_cast<char>(c));
    else if (mi < std::size(multi)) tok[static_cast<std::size_t>(c)] = multi[mi++];
    else {
      tok[static_cast<std::size_t>(c)] = std::string(1, static_cast<char>(letters[pair % letters.size()])) +
                                         static_cast<char>(letters[(pair / letters.size() + 1) % letters.size()]);
      ++pair;
    }
  }
  auto compress = [&](const std::string& full) {
    std::string out;
    for (std::size_t p = 0; p < full.size();) {
      int best = static_cast<unsigned char>(full[p]);
      std::size_t best_len = 1;
      for (int c = 0; c < 256; ++c) {
        auto& t = tok[static_cast<std::size_t>(c)];
        if (t.size() > best_len && full.compare(p, t.size(), t) == 0) best = c, best_len = t.size();
      }
      out += static_cast<char>(best);
      p += best_len;
    }
    return out;
  };
  std::string names;
  std::vector<uint32_t> markers;
  for (std::size_t i = 0; i < syms.size(); ++i) {
    if (i % 256 == 0) markers.push_back(static_cast<uint32_t>(names.size()));
    std::string c = compress(std::string(1, syms[i].type) + syms[i].name);
    if (c.size() >= 0x80) {
      names += static_cast<char>((c.size() & 0x7f) | 0x80);
      names += static_cast<char>(c.size() >> 7);
    } else {
      names += static_cast<char>(c.size());
    }
    names += c;
  }
  uint64_t relative_base = UINT64_MAX;
  for (auto& s : syms)
    if (!s.percpu || !l.absolute_percpu) relative_base = std::min(relative_base, s.addr);
  std::string offsets;
  for (auto& s : syms) {
    if (!l.base_relative) put(offsets, s.addr, 8);
    else if (l.absolute_percpu && s.percpu) put(offsets, s.addr, 4);
    else if (l.absolute_percpu) put(offsets, static_cast<uint32_t>(relative_base - 1 - s.addr), 4);
    else put(offsets, static_cast<uint32_t>(s.addr - relative_base), 4);
  }
  std::string seqs;
  for (std::size_t i = 0; i < syms.size(); ++i) {  // any permutation will do here
    std::size_t v = syms.size() - 1 - i;
    seqs += static_cast<char>(v >> 16), seqs += static_cast<char>(v >> 8), seqs += static_cast<char>(v);
  }

  Image img;
  img.base = base;
  std::string& b = img.bytes;
  std::mt19937 rng(11);
  for (std::size_t i = 0; i < lead; ++i) b += static_cast<char>(rng() & 0xff);
  b += '\0';
  for (char c = '0'; c <= '9'; ++c) b += std::string(1, c) + '\0';  // a decoy: no token index follows
  pad8(b);
  auto offsets_block = [&] {
    pad8(b);
    b += offsets;
    if (l.base_relative) {
      pad8(b);
      put(b, relative_base, 8);
    }
  };
  if (!l.order_6_4) offsets_block();
  pad8(b);
  put(b, syms.size(), 4);
  pad8(b);
  b += names;
  pad8(b);
  for (uint32_t m : markers) put(b, m, 4);
  if (l.seqs && !l.order_6_4) {
    pad8(b);
    b += seqs;
  }
  pad8(b);
  img.token_table = base + b.size();
  std::vector<uint16_t> index;
  std::size_t tt = b.size();
  for (auto& t : tok) {
    index.push_back(static_cast<uint16_t>(b.size() - tt));
    b += t;
    b += '\0';
  }
  pad8(b);
  for (uint16_t v : index) put(b, v, 2);
  if (l.order_6_4) {
    offsets_block();
    if (l.seqs) {
      pad8(b);
      b += seqs;
    }
  }
  pad8(b);
  for (int i = 0; i < 0x2000; ++i) b += static_cast<char>(rng() & 0xff);
  return img;
}

void check_decodes(const std::vector<Sym>& syms, const Layout& l) {
  Image img = build(syms, l);
  auto rd = img.reader();
  auto tt = find_token_table(rd, img.base, img.base + img.bytes.size());
  REQUIRE_MESSAGE(tt, tt.error().message);
  CHECK(*tt == img.token_table);
  auto t = locate_kallsyms(rd, *tt);
  REQUIRE_MESSAGE(t, t.error().message);
  CHECK(t->num_syms == syms.size());
  CHECK(t->order_6_4 == l.order_6_4);
  CHECK(t->seqs_of_names.has_value() == (l.seqs && !l.order_6_4));
  CHECK(t->base_relative == l.base_relative);
  if (l.base_relative) CHECK(t->absolute_percpu == l.absolute_percpu);
  auto out = read_kallsyms(rd, *t);
  REQUIRE_MESSAGE(out, out.error().message);
  REQUIRE(out->size() == syms.size());
  for (std::size_t i = 0; i < syms.size(); ++i) {
    INFO("symbol " << i << " " << syms[i].name);
    CHECK((*out)[i].name == syms[i].name);
    CHECK((*out)[i].type == syms[i].type);
    CHECK((*out)[i].addr == syms[i].addr);
  }
}

}  // namespace

TEST_CASE("kallsyms: pre-6.4 order with seqs_of_names (6.2/6.3, Debian 12's 6.1), absolute per-CPU") {
  check_decodes(sample_symbols(0xffffffff81000000ull), {false, true, true, true});
}

TEST_CASE("kallsyms: pre-6.2 order (no seqs_of_names)") {
  check_decodes(sample_symbols(0xffffffff81000000ull), {false, false, true, true});
}

TEST_CASE("kallsyms: 6.4+ order (offsets and relative base after the token index)") {
  check_decodes(sample_symbols(0xffffffff81000000ull), {true, true, true, true});
  check_decodes(sample_symbols(0xffffffff81000000ull), {true, false, true, true});
}

TEST_CASE("kallsyms: relative without absolute per-CPU, and absolute addresses") {
  auto syms = sample_symbols(0xffffffff81000000ull);
  for (auto& s : syms)
    if (s.percpu) s.percpu = false, s.addr += 0xffffffff80000000ull;  // plain addresses below _text
  std::sort(syms.begin(), syms.end(), [](const Sym& a, const Sym& b) { return a.addr < b.addr; });
  check_decodes(syms, {false, true, true, false});
  check_decodes(syms, {true, false, true, false});
  check_decodes(syms, {false, false, false, false});
}

TEST_CASE("kallsyms: a raw offset decodes as the kernel's kallsyms_sym_address does") {
  KallsymsTables t;
  t.relative_base = 0xffffffff9a000000ull;
  t.absolute_percpu = true;
  CHECK(kallsyms_address(t, 0x1fb80) == 0x1fb80);                    // per-CPU: absolute
  CHECK(kallsyms_address(t, 0xffffffffu) == 0xffffffff9a000000ull);  // -1: the base itself
  CHECK(kallsyms_address(t, 0xfffffffeu) == 0xffffffff9a000001ull);
  t.absolute_percpu = false;
  CHECK(kallsyms_address(t, 0x10) == 0xffffffff9a000010ull);
}

TEST_CASE("kallsyms: no token table, or a decoy digit run only, is an error") {
  Image img;
  img.base = 0x1000;
  img.bytes = std::string(0x20000, 'x');
  std::string decoy;
  for (char c = '0'; c <= '9'; ++c) decoy += std::string(1, c) + '\0';
  img.bytes.replace(0x100, decoy.size(), decoy);
  img.bytes.replace(0x10000 - 7, decoy.size(), decoy);  // across a chunk boundary
  auto rd = img.reader();
  CHECK_FALSE(find_token_table(rd, img.base, img.base + img.bytes.size()));
  CHECK_FALSE(locate_kallsyms(rd, img.base + 0x100));
  CHECK_FALSE(locate_kallsyms(rd, img.base + img.bytes.size() - 4));
  CHECK_FALSE(locate_kallsyms(rd, 0));
}

TEST_CASE("kallsyms: truncated images give errors, never a crash") {
  auto syms = sample_symbols(0xffffffff81000000ull);
  for (bool order_6_4 : {false, true}) {
    Image full = build(syms, {order_6_4, true, true, true}, 0xffffffff81000000ull, 0x100);
    uint64_t tt = full.token_table - full.base;
    // Cut the image at many points: before the token table nothing is
    // found; after it, the tables it needs are partly missing.
    for (std::size_t cut = 0x10; cut < full.bytes.size(); cut += 509) {
      Image img = full;
      img.bytes.resize(cut);
      auto rd = img.reader();
      auto found = find_token_table(rd, img.base, img.base + img.bytes.size());
      if (cut < tt + 256) {
        CHECK_FALSE(found);
        continue;
      }
      auto t = locate_kallsyms(rd, full.token_table);
      if (!t) continue;
      auto out = read_kallsyms(rd, *t);
      // Everything it needs can be there (the tail of the 6.4 order is
      // seqs_of_names, which is not read): then it must be right.
      if (out) CHECK(out->size() == syms.size());
    }
    // Tables read whole, then memory gone: read_kallsyms fails cleanly.
    Image img = full;
    auto rd = img.reader();
    auto t = locate_kallsyms(rd, full.token_table);
    REQUIRE(t);
    img.bytes.resize(static_cast<std::size_t>(t->names - img.base + 10));
    CHECK_FALSE(read_kallsyms(rd, *t));
  }
}

TEST_CASE("kallsyms: corrupted tables give errors or wrong names, never a crash") {
  auto syms = sample_symbols(0xffffffff81000000ull);
  Image full = build(syms, {false, true, true, true}, 0xffffffff81000000ull, 0x100);
  auto rd0 = full.reader();
  auto t0 = locate_kallsyms(rd0, full.token_table);
  REQUIRE(t0);
  std::mt19937 rng(3);
  int errors = 0;
  for (int round = 0; round < 120; ++round) {
    Image img = full;
    // Overwrite a few bytes somewhere in the tables.
    uint64_t lo = t0->offsets - img.base, hi = t0->token_index + 512 - img.base;
    for (int k = 0; k < 1 + round % 4; ++k)
      img.bytes[static_cast<std::size_t>(lo + rng() % (hi - lo))] = static_cast<char>(rng() & 0xff);
    auto rd = img.reader();
    auto tt = find_token_table(rd, img.base, img.base + img.bytes.size());
    if (!tt) { ++errors; continue; }
    auto t = locate_kallsyms(rd, *tt);
    if (!t) { ++errors; continue; }
    auto out = read_kallsyms(rd, *t);
    if (!out) ++errors;
  }
  CHECK(errors > 0);
  // The marker table broken at its start: no markers, an error.
  Image img = full;
  img.bytes[static_cast<std::size_t>(t0->markers - img.base)] = 1;
  auto rd = img.reader();
  CHECK_FALSE(locate_kallsyms(rd, full.token_table));
  // The token index broken: not a token table.
  img = full;
  img.bytes[static_cast<std::size_t>(t0->token_index - img.base + 100)] ^= 0x40;
  CHECK_FALSE(find_token_table(img.reader(), img.base, img.base + img.bytes.size()));
}

TEST_CASE("kernel base: walked back from a kernel RIP, or probed in the KASLR range") {
  const uint64_t base = 0xffffffff9a200000ull;  // a 2 MiB-aligned KASLR slot
  ReadMemory rd = [&](uint64_t addr, std::size_t len) -> Result<std::string> {
    if (addr < base || addr + len > base + (40ull << 20)) return make_error(14, "unmapped");
    return std::string(len, '\xcc');
  };
  CHECK(*find_kernel_base(rd, base + 0x1234567) == base);
  CHECK(*find_kernel_base(rd, std::nullopt) == base);
  CHECK(*find_kernel_base(rd, 0x7fff12345678ull) == base);   // a user RIP: probed
  CHECK(*find_kernel_base(rd, 0xffffffffc0001000ull) == base);  // a module's: probed
  ReadMemory none = [](uint64_t, std::size_t) -> Result<std::string> { return make_error(14, "unmapped"); };
  CHECK_FALSE(find_kernel_base(none, std::nullopt));
}

TEST_CASE("find_kernel: the whole search, then from the cache while the banner is the same") {
  const uint64_t base = 0xffffffff9a200000ull;
  auto syms = sample_symbols(base);
  Image img = build(syms, {false, true, true, true}, base, 0x3000);
  // The banner where linux_banner points (inside the image's lead).
  uint64_t banner_at = 0;
  for (auto& s : syms)
    if (s.name == "linux_banner") banner_at = s.addr;
  std::size_t banner_off = static_cast<std::size_t>(banner_at - base);
  if (img.bytes.size() < banner_off + 300) img.bytes.resize(banner_off + 300);
  std::string banner = "Linux version 6.1.0-test (dbgstub) #1 SMP";
  img.bytes.replace(banner_off, banner.size() + 1, banner + '\0');
  auto rd = img.reader();

  std::string dir = (std::filesystem::temp_directory_path() / ("dbgstub-kallsyms-test-" + std::to_string(::getpid())))
                        .string();
  std::filesystem::remove_all(dir);
  auto k = find_kernel(rd, base + 0x5000, dir);
  REQUIRE_MESSAGE(k, k.error().message);
  CHECK(k->base == base);
  CHECK(k->slide == static_cast<int64_t>(base - kKernelLinkBase));
  CHECK(k->banner == banner);
  CHECK_FALSE(k->from_cache);
  CHECK(k->symbols.size() == syms.size());

  auto again = find_kernel(rd, base + 0x5000, dir);
  REQUIRE(again);
  CHECK(again->from_cache);
  REQUIRE(again->symbols.size() == k->symbols.size());
  for (std::size_t i = 0; i < syms.size(); ++i) {
    CHECK(again->symbols[i].addr == k->symbols[i].addr);
    CHECK(again->symbols[i].name == k->symbols[i].name);
  }
  // Another boot's kernel at the same base (a different banner): decoded again.
  img.bytes[banner_off + 14] = '7';
  auto other = find_kernel(rd, base + 0x5000, dir);
  REQUIRE(other);
  CHECK_FALSE(other->from_cache);
  // No cache directory: never from the cache.
  auto nocache = find_kernel(rd, base + 0x5000, "");
  REQUIRE(nocache);
  CHECK_FALSE(nocache->from_cache);
  std::filesystem::remove_all(dir);

  // Tables that belong to another kernel (their _text is not the base).
  Image wrong = build(sample_symbols(base + kKernelAlign * 3), {false, true, true, true}, base, 0x3000);
  CHECK_FALSE(find_kernel(wrong.reader(), base + 0x5000, ""));
}

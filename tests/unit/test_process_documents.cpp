// Tests for the /proc and link_map documents: exact output on hand-built
// memory images, the real thing on a stopped /bin/sleep, and robustness
// against garbage memory.
#include <doctest/doctest.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "targets/process/process_documents.h"

using namespace dbgstub;
using namespace dbgstub::procdocs;

namespace {

// Sparse fake address space: reads succeed within one region and come
// back short at its end, like /proc/PID/mem at an unmapped page.
struct FakeMemory {
  std::map<uint64_t, std::string> regions;

  void put(uint64_t addr, const std::string& bytes) { regions[addr] = bytes; }
  void put_u64(uint64_t addr, uint64_t v) { put(addr, std::string(reinterpret_cast<const char*>(&v), 8)); }

  Result<std::string> read(uint64_t addr, std::size_t len) const {
    auto it = regions.upper_bound(addr);
    if (it == regions.begin()) return make_error(5, "unmapped");
    --it;
    uint64_t off = addr - it->first;
    if (off >= it->second.size()) return make_error(5, "unmapped");
    return it->second.substr(off, len);
  }
  MemoryReader reader() const {
    return [this](uint64_t a, std::size_t n) { return read(a, n); };
  }
};

template <typename T>
std::string bytes_of(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

std::string auxv_of(std::initializer_list<std::pair<uint64_t, uint64_t>> entries) {
  std::string s;
  for (auto [t, v] : entries) {
    Elf64_auxv_t a{};
    a.a_type = t;
    a.a_un.a_val = v;
    s += bytes_of(a);
  }
  Elf64_auxv_t end{};
  return s + bytes_of(end);
}

Elf64_Phdr phdr(uint32_t type, uint64_t vaddr, uint64_t offset = 0) {
  Elf64_Phdr p{};
  p.p_type = type;
  p.p_vaddr = vaddr;
  p.p_offset = offset;
  return p;
}

std::string dyn(int64_t tag, uint64_t val) {
  Elf64_Dyn d{};
  d.d_tag = tag;
  d.d_un.d_val = val;
  return bytes_of(d);
}

std::string link_map(uint64_t l_addr, uint64_t l_name, uint64_t l_ld, uint64_t l_next, uint64_t l_prev) {
  uint64_t f[5] = {l_addr, l_name, l_ld, l_next, l_prev};
  return std::string(reinterpret_cast<const char*>(f), sizeof f);
}

// A PIE loaded at bias 0x555555554000 with program headers at vaddr 0x40,
// .dynamic at vaddr 0x3000, r_debug at 0x7000 and a link_map chain:
// main (0x8000) -> vdso-like nameless (0x8100) -> libc (0x8200) -> odd name (0x8300).
constexpr uint64_t kBias = 0x555555554000;
constexpr uint64_t kPhdr = kBias + 0x40;
constexpr uint64_t kDynamic = kBias + 0x3000;
constexpr uint64_t kRDebug = 0x7000;

struct Image {
  FakeMemory mem;
  std::string auxv;
};

Image make_image(bool with_phdr = true, uint64_t dt_debug = kRDebug) {
  Image im;
  std::string ph;
  if (with_phdr) ph += bytes_of(phdr(PT_PHDR, 0x40, 0x40));
  ph += bytes_of(phdr(PT_LOAD, 0, 0));
  ph += bytes_of(phdr(PT_DYNAMIC, 0x3000, 0x2000));
  im.auxv = auxv_of({{AT_PAGESZ, 4096}, {AT_PHDR, kPhdr}, {AT_PHNUM, with_phdr ? 3u : 2u}, {AT_ENTRY, kBias + 0x1000}});
  im.mem.put(kPhdr, ph);
  im.mem.put(kDynamic, dyn(DT_NEEDED, 1) + dyn(DT_DEBUG, dt_debug) + dyn(DT_NULL, 0));
  uint64_t r_debug[2] = {1, 0x8000};  // r_version (int, padded), r_map
  im.mem.put(kRDebug, bytes_of(r_debug));
  im.mem.put(0x8000, link_map(kBias, 0x9000, kDynamic, 0x8100, 0));
  im.mem.put(0x8100, link_map(0x7fff000, 0x9100, 0x7fff3e0, 0x8200, 0x8000));
  im.mem.put(0x8200, link_map(0x7ff0000, 0x9200, 0x7ff1234, 0x8300, 0x8100));
  im.mem.put(0x8300, link_map(0x7fe0000, 0x9300, 0x7fe5678, 0, 0x8200));
  im.mem.put(0x9000, std::string("\0", 1));
  im.mem.put(0x9100, std::string("\0", 1));
  im.mem.put(0x9200, std::string("/lib/x86_64-linux-gnu/libc.so.6\0", 32));
  im.mem.put(0x9300, std::string("/tmp/a&b<'\">\t.so\0", 17));
  return im;
}

const char* const kExpected =
    "<library-list-svr4 version=\"1.0\" main-lm=\"0x8000\">"
    "<library name=\"/lib/x86_64-linux-gnu/libc.so.6\" lm=\"0x8200\" l_addr=\"0x7ff0000\" l_ld=\"0x7ff1234\" lmid=\"0x7000\"/>"
    "<library name=\"/tmp/a&amp;b&lt;&apos;&quot;&gt;&#9;.so\" lm=\"0x8300\" l_addr=\"0x7fe0000\" l_ld=\"0x7fe5678\" lmid=\"0x7000\"/>"
    "</library-list-svr4>";

}  // namespace

TEST_CASE("libraries_svr4: full document from a hand-built image") {
  Image im = make_image();
  auto doc = libraries_svr4(im.auxv, im.mem.reader());
  REQUIRE(doc.ok());
  CHECK(*doc == kExpected);
}

TEST_CASE("libraries_svr4: r_debug not filled in yet gives the empty list") {
  Image im = make_image(true, 0);
  auto doc = libraries_svr4(im.auxv, im.mem.reader());
  REQUIRE(doc.ok());
  CHECK(*doc == "<library-list-svr4 version=\"1.0\"/>");
}

TEST_CASE("libraries_svr4: bad r_debug version gives the empty list") {
  Image im = make_image();
  uint64_t r_debug[2] = {0, 0x8000};  // version 0: not a glibc r_debug
  im.mem.put(kRDebug, bytes_of(r_debug));
  auto doc = libraries_svr4(im.auxv, im.mem.reader());
  REQUIRE(doc.ok());
  CHECK(*doc == "<library-list-svr4 version=\"1.0\"/>");
}

TEST_CASE("libraries_svr4: errors where gdbserver sends E01") {
  SUBCASE("no DT_DEBUG") {
    Image im = make_image();
    im.mem.put(kDynamic, dyn(DT_NEEDED, 1) + dyn(DT_NULL, 0) + dyn(DT_DEBUG, kRDebug));
    CHECK_FALSE(libraries_svr4(im.auxv, im.mem.reader()).ok());
  }
  SUBCASE("no PT_DYNAMIC") {
    Image im = make_image();
    im.mem.put(kPhdr, bytes_of(phdr(PT_PHDR, 0x40, 0x40)) + bytes_of(phdr(PT_LOAD, 0)) + bytes_of(phdr(PT_NOTE, 0x300)));
    CHECK_FALSE(libraries_svr4(im.auxv, im.mem.reader()).ok());
  }
  SUBCASE("empty or truncated auxv") {
    Image im = make_image();
    CHECK_FALSE(libraries_svr4("", im.mem.reader()).ok());
    CHECK_FALSE(libraries_svr4(im.auxv.substr(0, 20), im.mem.reader()).ok());
  }
  SUBCASE("program headers unreadable") {
    Image im = make_image();
    im.mem.regions.erase(kPhdr);
    CHECK_FALSE(libraries_svr4(im.auxv, im.mem.reader()).ok());
  }
  SUBCASE("no PT_PHDR and no ELF header to fall back on") {
    Image im = make_image(false);
    CHECK_FALSE(libraries_svr4(im.auxv, im.mem.reader()).ok());
  }
}

TEST_CASE("libraries_svr4: without PT_PHDR the bias comes from a verified ELF header") {
  Image im = make_image(false);
  Elf64_Ehdr e{};
  std::memcpy(e.e_ident, ELFMAG, SELFMAG);
  e.e_ident[EI_CLASS] = ELFCLASS64;
  e.e_phoff = sizeof e;
  e.e_phnum = 2;
  std::string ph = im.mem.regions[kPhdr];
  im.mem.regions.erase(kPhdr);
  im.mem.put(kBias, bytes_of(e) + ph);
  auto doc = libraries_svr4(im.auxv, im.mem.reader());
  REQUIRE(doc.ok());
  CHECK(*doc == kExpected);
}

TEST_CASE("libraries_svr4: corrupt chains end the walk without failing") {
  SUBCASE("cycle back to an earlier entry") {
    Image im = make_image();
    im.mem.put(0x8300, link_map(0x7fe0000, 0x9300, 0x7fe5678, 0x8200, 0x8200));
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(*doc == kExpected);
  }
  SUBCASE("self loop that satisfies the l_prev check") {
    Image im = make_image();
    im.mem.put(0x8000, link_map(kBias, 0x9000, kDynamic, 0x8000, 0));
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(*doc == "<library-list-svr4 version=\"1.0\" main-lm=\"0x8000\"/>");
  }
  SUBCASE("l_prev mismatch stops before the entry") {
    Image im = make_image();
    im.mem.put(0x8300, link_map(0x7fe0000, 0x9300, 0x7fe5678, 0, 0x1234));
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(doc->find("libc.so.6") != std::string::npos);
    CHECK(doc->find("/tmp/a") == std::string::npos);
    CHECK(doc->ends_with("</library-list-svr4>"));
  }
  SUBCASE("unreadable link_map") {
    Image im = make_image();
    im.mem.put(0x8200, std::string(20, 'x'));  // short: only 20 of 40 bytes mapped
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(*doc == "<library-list-svr4 version=\"1.0\" main-lm=\"0x8000\"/>");
  }
  SUBCASE("name without NUL before unmapped memory is cut there") {
    Image im = make_image();
    im.mem.put(0x9200, "/lib/libz.so");
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(doc->find("name=\"/lib/libz.so\" lm=\"0x8200\"") != std::string::npos);
  }
  SUBCASE("unreadable name skips the entry") {
    Image im = make_image();
    im.mem.regions.erase(0x9200);
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(doc->find("lm=\"0x8200\"") == std::string::npos);
    CHECK(doc->find("lm=\"0x8300\"") != std::string::npos);
  }
}

TEST_CASE("libraries_svr4: dlmopen namespaces through r_debug_extended") {
  Image im = make_image();
  // r_debug_extended {r_version=2, r_map, r_brk, r_state, r_ldbase, r_next}
  auto r_debug_ext = [](uint64_t r_map, uint64_t r_next) {
    uint64_t f[6] = {2, r_map, 0, 0, 0, r_next};
    return std::string(reinterpret_cast<const char*>(f), sizeof f);
  };
  im.mem.put(kRDebug, r_debug_ext(0x8000, 0xa000));
  im.mem.put(0xa000, r_debug_ext(0xb000, 0));
  im.mem.put(0xb000, link_map(0x7000000, 0xb100, 0x7000500, 0, 0));
  im.mem.put(0xb100, std::string("/lib/libns.so\0", 14));
  const std::string ns_lib =
      "<library name=\"/lib/libns.so\" lm=\"0xb000\" l_addr=\"0x7000000\" l_ld=\"0x7000500\" lmid=\"0xa000\"/>";
  std::string expected = kExpected;
  expected.insert(expected.size() - std::strlen("</library-list-svr4>"), ns_lib);
  {
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(*doc == expected);
  }
  // r_next looping back to the main namespace is not followed again.
  im.mem.put(0xa000, r_debug_ext(0xb000, kRDebug));
  {
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    REQUIRE(doc.ok());
    CHECK(*doc == expected);
  }
}

TEST_CASE("libraries_svr4: start/prev annex continues the walk") {
  Image im = make_image();
  auto doc = libraries_svr4(im.auxv, im.mem.reader(), Svr4Annex{0x7000, 0x8200, 0x8100});
  REQUIRE(doc.ok());
  CHECK(*doc ==
        "<library-list-svr4 version=\"1.0\">"
        "<library name=\"/lib/x86_64-linux-gnu/libc.so.6\" lm=\"0x8200\" l_addr=\"0x7ff0000\" l_ld=\"0x7ff1234\" lmid=\"0x7000\"/>"
        "<library name=\"/tmp/a&amp;b&lt;&apos;&quot;&gt;&#9;.so\" lm=\"0x8300\" l_addr=\"0x7fe0000\" l_ld=\"0x7fe5678\" lmid=\"0x7000\"/>"
        "</library-list-svr4>");
  auto wrong_prev = libraries_svr4(im.auxv, im.mem.reader(), Svr4Annex{0x7000, 0x8200, 0x8000});
  REQUIRE(wrong_prev.ok());
  CHECK(*wrong_prev == "<library-list-svr4 version=\"1.0\"/>");
  // start == 0 is the full list, whatever else the annex says.
  auto full = libraries_svr4(im.auxv, im.mem.reader(), Svr4Annex{0x1234, 0, 0x5678});
  REQUIRE(full.ok());
  CHECK(*full == kExpected);
}

TEST_CASE("parse_svr4_annex") {
  auto a = parse_svr4_annex("lmid=7ffff7ffe118;start=7ffff7fc3000;prev=7FFFF7FFE2E0;");
  REQUIRE(a.ok());
  CHECK(a->lmid == 0x7ffff7ffe118);
  CHECK(a->start == 0x7ffff7fc3000);
  CHECK(a->prev == 0x7ffff7ffe2e0);
  auto b = parse_svr4_annex("foo=zz;start=10");
  REQUIRE(b.ok());
  CHECK(b->start == 0x10);
  CHECK(b->lmid == 0);
  CHECK(parse_svr4_annex("").ok());
  CHECK_FALSE(parse_svr4_annex("start=12g4").ok());
  CHECK_FALSE(parse_svr4_annex("start=10000000000000000").ok());
  CHECK(parse_svr4_annex("start=ffffffffffffffff")->start == ~uint64_t{0});
}

TEST_CASE("libraries_svr4: garbage memory never crashes") {
  std::mt19937_64 rng(12345);
  auto rand_bytes = [&](std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  // Addresses drawn mostly from a small window so that pointers found in
  // the garbage often point back into it and the walk gets deep.
  auto rand_addr = [&]() -> uint64_t {
    switch (rng() % 4) {
      case 0: return rng();
      case 1: return ~uint64_t{0} - rng() % 64;  // near the top: wraparound
      default: return 0x10000 + rng() % 0x400;
    }
  };
  const MemoryReader garbage = [&](uint64_t, std::size_t len) -> Result<std::string> {
    switch (rng() % 5) {
      case 0: return make_error(5, "EIO");
      case 1: return std::string();
      case 2: return rand_bytes(rng() % (len + 1));      // short read
      case 3: return rand_bytes(len + rng() % 16);       // a reader that overdelivers
      default: return rand_bytes(len);
    }
  };
  for (int i = 0; i < 1000; ++i) {
    std::string auxv = auxv_of({{AT_PHDR, rand_addr()}, {AT_PHNUM, rng() % 8 == 0 ? rng() : rng() % 40}});
    if (rng() % 4 == 0) auxv = rand_bytes(rng() % 200);
    auto doc = libraries_svr4(auxv, garbage);
    if (doc.ok()) CHECK(doc->starts_with("<library-list-svr4 version=\"1.0\""));
    (void)libraries_svr4(auxv, garbage, Svr4Annex{rand_addr(), rand_addr(), rand_addr()});
  }
  // A valid image with random bytes flipped: exercises the deep paths.
  for (int i = 0; i < 1000; ++i) {
    Image im = make_image(rng() % 2 == 0);
    for (auto& [addr, bytes] : im.mem.regions)
      for (int k = 0; k < 3; ++k)
        if (!bytes.empty() && rng() % 3 == 0) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    auto doc = libraries_svr4(im.auxv, im.mem.reader());
    if (doc.ok()) CHECK(doc->starts_with("<library-list-svr4 version=\"1.0\""));
  }
}

// ---- a real process ---------------------------------------------------

namespace {

// /bin/sleep 30 as our child, ptrace-stopped. With `at_exec` it stops at
// its exec (before ld.so ran); otherwise it runs ~100 ms first so that
// ld.so has loaded libc, then is seized and interrupted.
struct StoppedSleep {
  pid_t pid = -1;
  int mem_fd = -1;
  bool ok = false;  // checked by the test, so that the destructor always reaps the child

  explicit StoppedSleep(bool at_exec = false) {
    pid = ::fork();
    if (pid < 0) return;
    if (pid == 0) {
      if (at_exec) ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
      char arg0[] = "/bin/sleep", arg1[] = "30";
      char* argv[] = {arg0, arg1, nullptr};
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    if (!at_exec) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) return;
      if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) return;
    }
    int status = 0;
    if (::waitpid(pid, &status, __WALL) != pid || !WIFSTOPPED(status)) return;
    mem_fd = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    ok = mem_fd >= 0;
  }
  ~StoppedSleep() {
    if (mem_fd >= 0) ::close(mem_fd);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, __WALL);
    }
  }
  MemoryReader reader() const {
    int fd = mem_fd;
    return [fd](uint64_t addr, std::size_t len) -> Result<std::string> {
      std::string buf(len, '\0');
      ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(addr));
      if (n <= 0) return make_error(5, "pread failed");
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    };
  }
};

uint64_t auxv_value(const std::string& auxv, uint64_t type) {
  for (std::size_t off = 0; off + 16 <= auxv.size(); off += 16) {
    uint64_t t = 0, v = 0;
    std::memcpy(&t, auxv.data() + off, 8);
    std::memcpy(&v, auxv.data() + off + 8, 8);
    if (t == type) return v;
  }
  return 0;
}

}  // namespace

TEST_CASE("process documents of a running /bin/sleep") {
  StoppedSleep child;
  REQUIRE(child.ok);

  auto auxv = read_auxv(child.pid);
  REQUIRE(auxv.ok());
  CHECK(auxv->size() % 16 == 0);
  CHECK(auxv_value(*auxv, AT_PHDR) != 0);
  CHECK(auxv_value(*auxv, AT_PHNUM) != 0);

  auto exe = exec_file(child.pid);
  REQUIRE(exe.ok());
  CHECK(exe->ends_with("sleep"));

  CHECK(thread_name(child.pid, child.pid) == "sleep");
  CHECK(thread_name(child.pid, 999999999) == "");

  auto doc = libraries_svr4(*auxv, child.reader());
  REQUIRE(doc.ok());
  INFO(*doc);
  CHECK(doc->starts_with("<library-list-svr4 version=\"1.0\" main-lm=\"0x"));
  CHECK(doc->find("libc.so.6\" lm=\"0x") != std::string::npos);
  CHECK(doc->ends_with("</library-list-svr4>"));

  // The stack: any address in [stack] is mapped read/write, not exec.
  {
    auto at_random = auxv_value(*auxv, AT_RANDOM);  // lives on the initial stack
    REQUIRE(at_random != 0);
    auto r = memory_region(child.pid, at_random);
    REQUIRE(r.ok());
    CHECK(r->mapped);
    CHECK(r->read);
    CHECK(r->write);
    CHECK_FALSE(r->exec);
    CHECK(r->name == "[stack]");
    CHECK(r->start <= at_random);
    CHECK(at_random - r->start < r->size);
  }
  // Code of the main program: r-x and named after the file.
  {
    auto r = memory_region(child.pid, auxv_value(*auxv, AT_ENTRY));
    REQUIRE(r.ok());
    CHECK(r->mapped);
    CHECK(r->exec);
    CHECK_FALSE(r->write);
    CHECK(r->name.ends_with("sleep"));
  }
  // Page 1 is never mapped (mmap_min_addr): unmapped up to the first mapping.
  {
    auto r = memory_region(child.pid, 0x1000);
    REQUIRE(r.ok());
    CHECK_FALSE(r->mapped);
    CHECK(r->start == 0x1000);
    CHECK(r->size > 0);
    auto next = memory_region(child.pid, r->start + r->size);
    REQUIRE(next.ok());
    CHECK(next->mapped);
  }
  // Past every mapping (the top of the address space; [vsyscall] ends at
  // 0xffffffffff601000): unmapped up to 2^64.
  {
    auto r = memory_region(child.pid, 0xfffffffffffff000);
    REQUIRE(r.ok());
    CHECK_FALSE(r->mapped);
    CHECK(r->size == 0x1000);
  }
}

TEST_CASE("libraries_svr4 before ld.so ran is the empty list") {
  StoppedSleep child(true);
  REQUIRE(child.ok);
  auto auxv = read_auxv(child.pid);
  REQUIRE(auxv.ok());
  auto doc = libraries_svr4(*auxv, child.reader());
  REQUIRE(doc.ok());
  CHECK(*doc == "<library-list-svr4 version=\"1.0\"/>");
}

TEST_CASE("process documents of a process that doesn't exist") {
  CHECK_FALSE(read_auxv(999999999).ok());
  CHECK_FALSE(exec_file(999999999).ok());
  CHECK_FALSE(memory_region(999999999, 0x1000).ok());
  CHECK(thread_name(999999999, 999999999) == "");
}

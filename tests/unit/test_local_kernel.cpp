// Tests for the local-kernel target: kallsyms parsing and WinDbg's ln / x
// on synthetic symbol files, the /proc/kcore reader on a hand-built ELF
// core file, the osdata documents and !process on a fake /proc, dt on the
// machine's real BTF (when it has one), and the read-only refusals.
#include <doctest/doctest.h>
#include <elf.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "targets/local_kernel/local_kernel_internal.h"
#include "targets/local_kernel/local_kernel_target.h"

using namespace dbgstub;
using namespace dbgstub::lk;

namespace {

namespace fs = std::filesystem;

// A temporary directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/lktest.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

const char* kSymbols =
    "ffffffff81000000 T _stext\n"
    "ffffffff81000000 T _text\n"
    "ffffffff81000040 t helper_local\n"
    "ffffffff81000100 T schedule\n"
    "ffffffff81000200 T io_schedule\n"
    "ffffffff81000300 T preempt_schedule_notrace\n"
    "ffffffff82000000 D jiffies\n"
    "garbage line\n"
    "ffffffffc0001000 t ext4_fill_super\t[ext4]\n"
    "ffffffffc0000800 T ext4_schedule_thing\t[ext4]\n"
    "ffffffffc0002000 t xfs_init\t[xfs]\n";

LocalKernelTarget::Paths paths_with(const std::string& kallsyms, const std::string& kcore = "/nonexistent/kcore",
                                    const std::string& proc = "/nonexistent/proc",
                                    const std::string& btf = "/nonexistent/btf") {
  LocalKernelTarget::Paths p;
  p.kallsyms = kallsyms;
  p.kcore = kcore;
  p.proc = proc;
  p.btf = btf;
  return p;
}

CommandOutput run(LocalKernelTarget& t, const std::string& name, const std::string& args) {
  for (auto& c : t.commands())
    if (c.name == name) return c.run(args);
  FAIL("no command " << name);
  return {false, ""};
}

// An ELF64 core file with two PT_LOAD segments (and a PT_NOTE to skip):
// [0xffff800000000000, +0x100) at file offset 0x1000 holding bytes i & 0xff,
// [0xffff800000000100, +0x80) at file offset 0x2000 holding 0xa0 + (i & 0xf)
// (adjacent to the first, so a read may span both), nothing else mapped.
std::string make_core(const TempDir& dir) {
  std::string img(0x2080, '\0');
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 3;
  std::memcpy(img.data(), &eh, sizeof eh);
  Elf64_Phdr ph[3]{};
  ph[0].p_type = PT_NOTE;
  ph[0].p_offset = 0x800;
  ph[0].p_filesz = 0x10;
  ph[1].p_type = PT_LOAD;
  ph[1].p_vaddr = 0xffff800000000100;
  ph[1].p_offset = 0x2000;
  ph[1].p_filesz = ph[1].p_memsz = 0x80;
  ph[2].p_type = PT_LOAD;
  ph[2].p_vaddr = 0xffff800000000000;
  ph[2].p_offset = 0x1000;
  ph[2].p_filesz = ph[2].p_memsz = 0x100;
  std::memcpy(img.data() + sizeof eh, ph, sizeof ph);
  for (int i = 0; i < 0x100; ++i) img[0x1000 + static_cast<std::size_t>(i)] = static_cast<char>(i);
  for (int i = 0; i < 0x80; ++i) img[0x2000 + static_cast<std::size_t>(i)] = static_cast<char>(0xa0 + (i & 0xf));
  return dir.file("kcore", img);
}

// A top-level member line of dt: "   +0xOFF NAME<spaces> : TYPE".
bool has_member(const std::string& text, const std::string& name, const std::string& type) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("   +0x", 0) != 0) continue;
    std::size_t i = 6, hex = 0;
    while (i < line.size() && std::isxdigit(static_cast<unsigned char>(line[i]))) ++i, ++hex;
    if (hex < 3 || line.compare(i, 1 + name.size(), " " + name) != 0) continue;
    i += 1 + name.size();
    while (i < line.size() && line[i] == ' ') ++i;
    if (line.substr(i) == ": " + type) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("kallsyms: parsed, sorted by address, modules split off, garbage skipped") {
  SymbolTable t = SymbolTable::parse(kSymbols);
  const auto& s = t.symbols();
  REQUIRE(s.size() == 10);
  CHECK_FALSE(t.addresses_hidden());
  for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i - 1].addr <= s[i].addr);
  CHECK(s[0].name == "_stext");  // equal addresses keep file order
  CHECK(s[1].name == "_text");
  CHECK(s[0].type == 'T');
  auto ext4 = t.find("ext4_fill_super");
  REQUIRE(ext4.size() == 1);
  CHECK(ext4[0]->module == "ext4");
  CHECK(ext4[0]->addr == 0xffffffffc0001000);
  CHECK(display_name(*ext4[0]) == "ext4!ext4_fill_super");
  CHECK(t.find("schedule", std::string("nt")).size() == 1);
  CHECK(t.find("schedule", std::string("ext4")).empty());
  CHECK(t.find("ext4_fill_super", std::string("vmlinux")).empty());
  CHECK(*t.at_or_below(0xffffffff81000150) == 3);
  CHECK_FALSE(t.at_or_below(0x1000).has_value());
}

// find() searches a by-name index; it must answer as a pass over the
// table in address order would, for names in many modules and at many
// addresses, and for names that sort next to each other.
TEST_CASE("kallsyms: find by name matches a linear search, in address order") {
  std::string text;
  const char* names[] = {"a", "ab", "abc", "b", "dup", "dup_", "Dup", "x"};
  const char* modules[] = {"", "", " [m1]", " [m2]", " [nt]"};
  unsigned v = 7;
  for (int i = 0; i < 300; ++i) {
    v = v * 1103515245u + 12345u;
    char line[128];
    std::snprintf(line, sizeof line, "ffffffff8%07x %c %s%s\n", (v >> 8) & 0xfffff00, "Tt"[v & 1], names[(v >> 3) % 8],
                  modules[(v >> 6) % 5]);
    text += line;
  }
  SymbolTable t = SymbolTable::parse(text);
  REQUIRE(t.symbols().size() == 300);
  std::vector<std::optional<std::string>> wants = {std::nullopt, std::string("nt"), std::string("vmlinux"),
                                                   std::string("m1"), std::string("m2"), std::string("m3")};
  for (const char* name : {"a", "ab", "abc", "b", "dup", "dup_", "Dup", "x", "", "aa", "du", "zz"}) {
    for (const auto& module : wants) {
      std::vector<const KernelSymbol*> linear;
      for (const auto& s : t.symbols()) {
        bool in_module = !module || ((*module == "nt" || *module == "vmlinux") ? s.module.empty() : s.module == *module);
        if (s.name == name && in_module) linear.push_back(&s);
      }
      CHECK(t.find(name, module) == linear);
    }
  }
  CHECK(t.find("dup").size() > 10);
  CHECK(SymbolTable().find("a").empty());
  SymbolTable copy = t;  // the index holds positions, not pointers
  REQUIRE(copy.find("abc").size() == t.find("abc").size());
  CHECK(copy.find("abc").front() == &copy.symbols()[static_cast<std::size_t>(t.find("abc").front() - t.symbols().data())]);
}

TEST_CASE("kallsyms: all-zero addresses are recognised as hidden") {
  SymbolTable t = SymbolTable::parse("0000000000000000 T _stext\n0000000000000000 T schedule\n");
  CHECK(t.addresses_hidden());
  auto ln = list_nearest(t, "0");
  CHECK_FALSE(ln.first);
  CHECK(ln.second.find("kptr_restrict") != std::string::npos);
  auto x = examine_symbols(t, "sched*");
  CHECK(x.first);
  CHECK(x.second.find("hidden") != std::string::npos);
  CHECK(x.second.find("0000000000000000 schedule\n") != std::string::npos);
}

TEST_CASE("wildcards and addresses") {
  CHECK(wildcard_match("*schedule", "schedule"));
  CHECK(wildcard_match("*schedule", "io_schedule"));
  CHECK_FALSE(wildcard_match("*schedule", "schedule_tail"));
  CHECK(wildcard_match("sch?dule", "schedule"));
  CHECK_FALSE(wildcard_match("sch?dule", "schdule"));
  CHECK(wildcard_match("*", ""));
  CHECK(wildcard_match("a*b*c", "aXXbYYbZc"));
  CHECK_FALSE(wildcard_match("a*b*c", "aXXbYYbZ"));
  CHECK(wildcard_match("**x", "x"));
  CHECK_FALSE(wildcard_match("Schedule", "schedule"));  // case-sensitive, like the kernel's names

  CHECK(parse_address("ffffffff81000000") == 0xffffffff81000000);
  CHECK(parse_address("0xFFFFFFFF81000000") == 0xffffffff81000000);
  CHECK(parse_address("ffffffff`81000000") == 0xffffffff81000000);
  CHECK_FALSE(parse_address("schedule").has_value());
  CHECK_FALSE(parse_address("0x").has_value());
  CHECK_FALSE(parse_address("1ffffffffffffffff").has_value());
}

TEST_CASE("ln: nearest symbol with offset, the next one, exact matches") {
  SymbolTable t = SymbolTable::parse(kSymbols);
  auto r = list_nearest(t, "ffffffff81000110");
  CHECK(r.first);
  CHECK(r.second == "(ffffffff81000100)   schedule+0x10   |  (ffffffff81000200)   io_schedule\n");

  // Several names at one address: the line names one, all are listed.
  r = list_nearest(t, "0xffffffff81000000");
  CHECK(r.first);
  CHECK(r.second ==
        "(ffffffff81000000)   _stext   |  (ffffffff81000040)   helper_local\n"
        "Exact matches:\n    _stext\n    _text\n");

  // A module's symbols carry the module name.
  r = list_nearest(t, "ffffffffc0001004");
  CHECK(r.second == "(ffffffffc0001000)   ext4!ext4_fill_super+0x4   |  (ffffffffc0002000)   xfs!xfs_init\n");

  // A symbol name works as well as an address.
  r = list_nearest(t, "io_schedule");
  CHECK(r.first);
  CHECK(r.second.rfind("(ffffffff81000200)   io_schedule   |", 0) == 0);
  r = list_nearest(t, "ext4!ext4_fill_super");
  CHECK(r.second.rfind("(ffffffffc0001000)   ext4!ext4_fill_super", 0) == 0);

  // The last symbol has no next.
  r = list_nearest(t, "ffffffffc0002008");
  CHECK(r.second == "(ffffffffc0002000)   xfs!xfs_init+0x8\n");
  CHECK_FALSE(list_nearest(t, "ffffffffffff0000").first);  // far past the last symbol

  // Bad input.
  for (const char* bad : {"", "   ", "1 2", "no_such_symbol", "sched*"}) {
    auto b = list_nearest(t, bad);
    CHECK_FALSE(b.first);
    CHECK(b.second.find("Usage: ln") != std::string::npos);
  }
  auto below = list_nearest(t, "10");
  CHECK_FALSE(below.first);
  CHECK(below.second.find("No symbol") != std::string::npos);
}

TEST_CASE("x: patterns, module prefixes, cap") {
  SymbolTable t = SymbolTable::parse(kSymbols);
  auto r = examine_symbols(t, "*schedule");
  CHECK(r.first);
  CHECK(r.second == "ffffffff81000100 schedule\nffffffff81000200 io_schedule\n");

  r = examine_symbols(t, "*schedule*");
  CHECK(r.second ==
        "ffffffff81000100 schedule\nffffffff81000200 io_schedule\nffffffff81000300 preempt_schedule_notrace\n"
        "ffffffffc0000800 ext4!ext4_schedule_thing\n");

  r = examine_symbols(t, "nt!*schedule*");
  CHECK(r.second.find("ext4!") == std::string::npos);
  CHECK(r.second.find("preempt_schedule_notrace") != std::string::npos);
  CHECK(examine_symbols(t, "vmlinux!jiffies").second == "ffffffff82000000 jiffies\n");

  r = examine_symbols(t, "ext4!*");
  CHECK(r.second == "ffffffffc0000800 ext4!ext4_schedule_thing\nffffffffc0001000 ext4!ext4_fill_super\n");
  CHECK(examine_symbols(t, "x?s!*").second == "ffffffffc0002000 xfs!xfs_init\n");

  r = examine_symbols(t, "nothing_like_this");
  CHECK(r.first);
  CHECK(r.second.find("No symbols match") != std::string::npos);

  r = examine_symbols(t, "*", 3);
  CHECK(r.first);
  CHECK(r.second.find("ffffffff81000040 helper_local\n") != std::string::npos);
  CHECK(r.second.find("ffffffff81000100") == std::string::npos);
  CHECK(r.second.find("7 more matches not shown: 10 in all") != std::string::npos);

  for (const char* bad : {"", "a b", "!foo", "nt!"}) {
    auto b = examine_symbols(t, bad);
    CHECK_FALSE(b.first);
    CHECK(b.second.find("Usage: x") != std::string::npos);
  }
}

TEST_CASE("ln and x through the target's commands, symbols from a file given in Paths") {
  TempDir dir;
  LocalKernelTarget t(paths_with(dir.file("kallsyms", kSymbols)));
  auto r = run(t, "ln", "ffffffff81000101");
  CHECK(r.first);
  CHECK(r.second.rfind("(ffffffff81000100)   schedule+0x1", 0) == 0);
  r = run(t, "x", "*schedule");
  CHECK(r.second == "ffffffff81000100 schedule\nffffffff81000200 io_schedule\n");

  LocalKernelTarget missing(paths_with("/nonexistent/kallsyms"));
  r = run(missing, "ln", "ffffffff81000101");
  CHECK_FALSE(r.first);
  CHECK(r.second.find("kernel symbols are not available: cannot read /nonexistent/kallsyms") != std::string::npos);
}

TEST_CASE("kcore: PT_LOAD segments parsed; reads within, across and outside them") {
  TempDir dir;
  std::string core = make_core(dir);
  KcoreReader k;
  REQUIRE(k.open(core).ok());
  REQUIRE(k.segments().size() == 2);
  CHECK(k.segments()[0].vaddr == 0xffff800000000000);
  CHECK(k.segments()[0].offset == 0x1000);
  CHECK(k.segments()[0].size == 0x100);
  CHECK(k.segments()[1].vaddr == 0xffff800000000100);

  auto r = k.read(0xffff800000000010, 4);
  REQUIRE(r.ok());
  CHECK(*r == std::string("\x10\x11\x12\x13", 4));

  // Spanning the two adjacent segments.
  r = k.read(0xffff8000000000fe, 4);
  REQUIRE(r.ok());
  CHECK(*r == std::string("\xfe\xff\xa0\xa1", 4));

  // Running into unmapped space: what is mapped.
  r = k.read(0xffff800000000170, 0x40);
  REQUIRE(r.ok());
  CHECK(r->size() == 0x10);

  // Unmapped: an error.
  r = k.read(0xffff800000001000, 4);
  CHECK_FALSE(r.ok());
  CHECK(r.error().message.find("not mapped") != std::string::npos);
  CHECK_FALSE(k.read(0x1000, 1).ok());

  // Through the target.
  LocalKernelTarget t(paths_with("/nonexistent/kallsyms", core));
  auto m = t.read_memory(0, 0xffff800000000020, 2);
  REQUIRE(m.ok());
  CHECK(*m == std::string("\x20\x21", 2));
}

TEST_CASE("kcore: bad files and a missing /proc/kcore are errors that say why") {
  TempDir dir;
  KcoreReader k;
  auto st = k.open(dir.file("notelf", std::string(128, 'x')));
  CHECK_FALSE(st.ok());
  CHECK(st.error().message.find("not an ELF file") != std::string::npos);

  LocalKernelTarget t(paths_with("/nonexistent/kallsyms", "/nonexistent/kcore"));
  auto m = t.read_memory(0, 0xffffffff81000000, 4);
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().message == "kernel memory is not readable: /nonexistent/kcore does not exist");
  CHECK(m.error().code == ENOENT);
}

TEST_CASE("osdata: gdbserver's processes document from a fake /proc") {
  TempDir dir;
  std::string proc = (dir.path / "proc").string();
  // A process with a command line (NULs become spaces, the last one too),
  // a kernel thread (empty cmdline: [comm], cut as gdbserver does), and
  // characters that need escaping.
  dir.file("proc/42/stat", "42 (prog) S 1 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n");
  dir.file("proc/42/cmdline", std::string("/bin/prog\0-x\0a<b&c\0", 19));
  dir.file("proc/42/task/42/stat",
           "42 (prog) S 1 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  dir.file("proc/7/stat", "7 (kworker/u8:0-events_unbound) I 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0\n");
  dir.file("proc/7/cmdline", "");
  dir.file("proc/self/stat", "1 (x) S 0\n");  // not numeric: skipped
  fs::create_directories(dir.path / "proc/42/task");

  std::string x = osdata_processes(proc);
  CHECK(x.rfind("<osdata type=\"processes\">\n", 0) == 0);
  CHECK(x.size() > 10);
  CHECK(x.substr(x.size() - 10) == "</osdata>\n");
  passwd* pw = ::getpwuid(::getuid());
  std::string user = pw ? pw->pw_name : "";
  CHECK(x.find("<item><column name=\"pid\">42</column><column name=\"user\">" + user +
               "</column><column name=\"command\">/bin/prog -x a&lt;b&amp;c </column>"
               "<column name=\"cores\">0</column></item>") != std::string::npos);
  CHECK(x.find("<item><column name=\"pid\">7</column><column name=\"user\">" + user +
               "</column><column name=\"command\">[kworker/u8:0-ev]</column>"
               "<column name=\"cores\"></column></item>") != std::string::npos);
  CHECK(x.find("self") == std::string::npos);

  // Through the target, and the types list.
  LocalKernelTarget t(paths_with("/nonexistent/kallsyms", "/nonexistent/kcore", proc));
  auto doc = t.osdata("processes");
  REQUIRE(doc.ok());
  CHECK(*doc == x);
  auto types = t.osdata("");
  REQUIRE(types.ok());
  CHECK(*types ==
        "<osdata type=\"types\">\n<item><column name=\"Type\">processes</column>"
        "<column name=\"Description\">Listing of all processes</column>"
        "<column name=\"Title\">Processes</column></item></osdata>\n");
  CHECK_FALSE(t.osdata("sockets").ok());

  // !process
  auto p = run(t, "!process", "0 0");
  CHECK(p.first);
  CHECK(p.second.find("PROCESS 0  SessionId: none  Cid: 002a  Peb: 0  ParentCid: 0001\n    Image: prog\n") !=
        std::string::npos);
  CHECK(p.second.find("Cid: 0007  Peb: 0  ParentCid: 0002\n    Image: kworker/u8:0-events_unbound\n") !=
        std::string::npos);
  CHECK(p.second.find("task_struct addresses are not available") != std::string::npos);
  p = run(t, "!process", "2a 0");
  CHECK(p.first);
  CHECK(p.second.find("Cid: 0007") == std::string::npos);
  CHECK(p.second.find("Cid: 002a") != std::string::npos);
  p = run(t, "!process", "0 0 kworker*");
  CHECK(p.second.find("Cid: 002a") == std::string::npos);
  CHECK(p.second.find("Cid: 0007") != std::string::npos);
  CHECK_FALSE(run(t, "!process", "99 0").first);
  auto bad = run(t, "!process", "zz");
  CHECK_FALSE(bad.first);
  CHECK(bad.second.find("Usage: !process") != std::string::npos);
}

// The cores column takes field 39 of each task's stat (the processor),
// found after the last ')' of the comm; only cores that are online count.
TEST_CASE("osdata: cores from every task's stat, odd names and short lines") {
  TempDir dir;
  std::string proc = (dir.path / "proc").string();
  auto task_stat = [](const std::string& comm, const std::string& processor, const std::string& sep = " ") {
    std::string s = "9 (" + comm + ") S";
    for (int i = 1; i < 36; ++i) s += sep + std::to_string(i);
    return s + sep + processor + " 0 0 0\n";
  };
  dir.file("proc/9/stat", "9 (a) S 1\n");
  dir.file("proc/9/cmdline", std::string("a\0", 2));
  dir.file("proc/9/task/9/stat", task_stat("a) (b", "1"));            // a ')' inside the comm
  dir.file("proc/9/task/10/stat", task_stat("a", "0", "\t  "));       // tabs and runs of spaces
  dir.file("proc/9/task/11/stat", task_stat("a", "1"));
  dir.file("proc/9/task/12/stat", "12 (a) S 1 2 3\n");               // too short: no processor
  dir.file("proc/9/task/13/stat", task_stat("a", "x"));               // not a number
  dir.file("proc/9/task/14/stat", task_stat("a", "100000000"));       // not an online core
  dir.file("proc/9/task/15/stat", task_stat("a", "-1"));
  dir.file("proc/9/task/16/stat", "no parenthesis 1 2 3\n");
  dir.file("proc/8/stat", "8 (b) S 1\n");
  dir.file("proc/8/cmdline", std::string("b\0", 2));
  dir.file("proc/8/task/8/stat", task_stat("b", "1"));
  std::string x = osdata_processes(proc);
  bool two = ::sysconf(_SC_NPROCESSORS_ONLN) >= 2;
  CHECK(x.find("<column name=\"pid\">9</column>") != std::string::npos);
  CHECK(x.find(std::string("<column name=\"command\">a </column><column name=\"cores\">") + (two ? "0,1" : "0") +
               "</column>") != std::string::npos);
  CHECK(x.find(std::string("<column name=\"command\">b </column><column name=\"cores\">") + (two ? "1" : "") +
               "</column>") != std::string::npos);
  // Both processes are this user's (the name is looked up once per document).
  passwd* pw = ::getpwuid(::getuid());
  std::string user = pw ? pw->pw_name : "";
  std::size_t n = 0;
  for (std::size_t at = 0; (at = x.find("<column name=\"user\">" + user + "</column>", at)) != std::string::npos; ++at) ++n;
  CHECK(n == 2);
}

TEST_CASE("xml_escape_text: the five characters gdb escapes, everything else as is") {
  CHECK(xml_escape_text("") == "");
  CHECK(xml_escape_text("plain text, no specials") == "plain text, no specials");
  CHECK(xml_escape_text("'\"&<>") == "&apos;&quot;&amp;&lt;&gt;");
  CHECK(xml_escape_text("a<b>c&&d'e\"") == "a&lt;b&gt;c&amp;&amp;d&apos;e&quot;");
  CHECK(xml_escape_text(">start and end<") == "&gt;start and end&lt;");
  std::string with_nul("x\0<\0y", 5);
  CHECK(xml_escape_text(with_nul) == std::string("x\0&lt;\0y", 8));
  std::string lng(5000, 'a');
  lng[2500] = '&';
  CHECK(xml_escape_text(lng) == std::string(2500, 'a') + "&amp;" + std::string(2499, 'a'));
}

// A one-thread process's cores come from /proc/PID/stat (its leader is its
// only task): task/ is not read. Zombie leaders, more threads, or a stat
// without the fields fall back to every task's stat.
TEST_CASE("osdata: cores of a one-thread process from its own stat") {
  TempDir dir;
  std::string proc = (dir.path / "proc").string();
  // state, then fields 1..35 (num_threads is field 17 after the comm), then
  // the processor (36).
  auto stat = [](const std::string& pid, const std::string& state, const std::string& threads,
                 const std::string& processor) {
    std::string s = pid + " (p) " + state;
    for (int i = 1; i < 36; ++i) s += " " + (i == 17 ? threads : std::to_string(i));
    return s + " " + processor + " 0 0 0\n";
  };
  // One thread: the pid's stat says core 1; the task stat (which a real
  // /proc would keep equal) says 0 and must not be read.
  dir.file("proc/20/stat", stat("20", "S", "1", "1"));
  dir.file("proc/20/cmdline", std::string("one\0", 4));
  dir.file("proc/20/task/20/stat", stat("20", "S", "1", "0"));
  // One thread but an offline core: empty, as the walk would give.
  dir.file("proc/21/stat", stat("21", "R", "1", "100000000"));
  dir.file("proc/21/cmdline", std::string("off\0", 4));
  // Two threads: every task's stat.
  dir.file("proc/22/stat", stat("22", "S", "2", "1"));
  dir.file("proc/22/cmdline", std::string("two\0", 4));
  dir.file("proc/22/task/22/stat", stat("22", "S", "2", "0"));
  dir.file("proc/22/task/23/stat", stat("23", "S", "2", "0"));
  // A zombie leader with one live thread left: every task's stat.
  dir.file("proc/24/stat", stat("24", "Z", "1", "1"));
  dir.file("proc/24/cmdline", std::string("zombie\0", 7));
  dir.file("proc/24/task/24/stat", stat("24", "Z", "1", "0"));
  dir.file("proc/24/task/25/stat", stat("25", "S", "1", "0"));
  // One thread, processor not a number: every task's stat.
  dir.file("proc/26/stat", stat("26", "S", "1", "x"));
  dir.file("proc/26/cmdline", std::string("nan\0", 4));
  dir.file("proc/26/task/26/stat", stat("26", "S", "1", "0"));
  // A kernel thread: [comm] from the same stat.
  dir.file("proc/27/stat", stat("27", "I", "1", "0"));
  dir.file("proc/27/cmdline", "");

  std::string x = osdata_processes(proc);
  bool two = ::sysconf(_SC_NPROCESSORS_ONLN) >= 2;
  auto row = [&](const std::string& command, const std::string& cores) {
    return x.find("<column name=\"command\">" + command + "</column><column name=\"cores\">" + cores +
                  "</column>") != std::string::npos;
  };
  CHECK(row("one ", two ? "1" : ""));
  CHECK(row("off ", ""));
  CHECK(row("two ", "0"));
  CHECK(row("zombie ", "0"));
  CHECK(row("nan ", "0"));
  CHECK(row("[p]", "0"));
}

TEST_CASE("osdata on the real /proc lists this process") {
  LocalKernelTarget t;
  auto doc = t.osdata("processes");
  REQUIRE(doc.ok());
  std::string me = "<item><column name=\"pid\">" + std::to_string(getpid()) + "</column>";
  CHECK(doc->find(me) != std::string::npos);
  auto p = run(t, "!process", "0 0");
  char cid[32];
  std::snprintf(cid, sizeof cid, "Cid: %04x", static_cast<unsigned>(getpid()));
  CHECK(p.second.find(cid) != std::string::npos);
}

TEST_CASE("dt: struct layouts from the real BTF") {
  const char* btf = "/sys/kernel/btf/vmlinux";
  if (::access(btf, R_OK) != 0) {
    MESSAGE("skipped: no readable " << btf);
    return;
  }
  LocalKernelTarget t;
  auto r = run(t, "dt", "task_struct");
  REQUIRE(r.first);
  CHECK(r.second.rfind("struct task_struct (size 0x", 0) == 0);
  CHECK(has_member(r.second, "pid", "pid_t"));
  CHECK(has_member(r.second, "comm", "char [16]"));
  r = run(t, "dt", "nt!list_head");
  CHECK(r.second ==
        "struct list_head (size 0x10, 2 members)\n"
        "   +0x000 next             : struct list_head *\n"
        "   +0x008 prev             : struct list_head *\n");
  r = run(t, "dt", "task_struct pid");
  CHECK(r.first);
  CHECK(has_member(r.second, "pid", "pid_t"));
  CHECK(std::count(r.second.begin(), r.second.end(), '\n') == 2);
  r = run(t, "dt", "pid_t");
  CHECK(r.second.find("typedef __kernel_pid_t pid_t") != std::string::npos);
  CHECK_FALSE(run(t, "dt", "no_such_type_anywhere").first);
  auto u = run(t, "dt", "");
  CHECK_FALSE(u.first);
  CHECK(u.second.find("Usage: dt") != std::string::npos);
}

TEST_CASE("dt without BTF says why") {
  LocalKernelTarget t(paths_with("/nonexistent/kallsyms", "/nonexistent/kcore", "/proc", "/nonexistent/btf"));
  auto r = run(t, "dt", "task_struct");
  CHECK_FALSE(r.first);
  CHECK(r.second.find("kernel type information is not available: /nonexistent/btf does not exist") !=
        std::string::npos);
}

TEST_CASE("the local kernel is read-only: every change is refused, reads are zero registers") {
  LocalKernelTarget t(paths_with("/nonexistent/kallsyms"));
  CHECK(t.mode() == Mode::LocalKernel);
  CHECK(t.describe().rfind("local kernel ", 0) == 0);
  CHECK(t.threads() == std::vector<ThreadRef>{{1, 1}});
  CHECK(t.thread_alive({1, 1}));
  CHECK_FALSE(t.thread_alive({2, 2}));
  CHECK(t.processes().empty());
  CHECK_FALSE(t.running());
  auto regs = t.read_registers({1, 1});
  REQUIRE(regs.ok());
  CHECK(regs->find_first_not_of('\0') == std::string::npos);
  CHECK(t.read_register({1, 1}, 16).ok());
  CHECK_FALSE(t.read_register({1, 1}, 100000).ok());
  CHECK(t.target_xml().find("<target") != std::string::npos);

  auto refused = [](const Status& st, const std::string& what) {
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message.find(what) != std::string::npos);
    CHECK(st.error().message.find("not supported in a local kernel session") != std::string::npos);
  };
  refused(t.kill_process(1), ".kill");
  refused(t.resume({ResumeAction{}}), "continue");
  refused(t.interrupt(), "interrupt");
  refused(t.write_memory(0, 0xffffffff81000000, "x"), "writing memory");
  refused(t.write_registers({1, 1}, std::string(8, '\0')), "writing");
  refused(t.write_register({1, 1}, 0, std::string(8, '\0')), "writing");
  refused(t.insert_breakpoint(0, BreakpointType::Software, 0xffffffff81000000, 1), "breakpoints");
  refused(t.remove_breakpoint(0, BreakpointType::Hardware, 0xffffffff81000000, 1), "breakpoints");
  CHECK(t.detach_process(1).ok());

  std::vector<std::string> names;
  for (auto& c : t.commands()) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"ln", "x", "!process", "dt"});
}

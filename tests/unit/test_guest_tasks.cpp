// The Linux guest task walker and the guest agent's base64. The walker runs
// here over a synthetic memory image (a real guest's memory is exercised by
// the VM integration tests); its BTF reading runs on this machine's own
// kernel BTF when it has one.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "targets/guest/linux_tasks.h"
#include "targets/guest/qga_client.h"

using namespace dbgstub;
using namespace dbgstub::guest;

namespace {

// Sparse little-endian memory.
struct FakeMemory {
  std::map<uint64_t, char> bytes;
  void put(uint64_t addr, uint64_t v, int width) {
    for (int i = 0; i < width; ++i) bytes[addr + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  void put_str(uint64_t addr, const std::string& s) {
    for (std::size_t i = 0; i < s.size(); ++i) bytes[addr + i] = s[i];
    bytes[addr + s.size()] = 0;
  }
  ReadMemory reader() const {
    return [this](uint64_t addr, std::size_t len) -> Result<std::string> {
      std::string out;
      for (std::size_t i = 0; i < len; ++i) {
        auto it = bytes.find(addr + i);
        if (it == bytes.end()) return make_error(14, "unmapped");
        out += it->second;
      }
      return out;
    };
  }
};

TaskLayout layout() {
  TaskLayout l;
  l.flags = 0x2c;
  l.tasks = 0x100;
  l.mm = 0x120;
  l.pid = 0x200;
  l.tgid = 0x204;
  l.comm = 0x300;
  return l;
}

void add_task(FakeMemory& m, const TaskLayout& l, uint64_t at, uint64_t next, int pid, const std::string& comm,
              bool kthread) {
  for (uint64_t a = at; a < at + 0x320; ++a) m.bytes[a] = 0;
  m.put(at + l.flags, kthread ? kPfKthread : 0x400000, 4);
  m.put(at + l.tasks, next + l.tasks, 8);
  m.put(at + l.mm, kthread ? 0 : 0xffff888000123000, 8);
  m.put(at + l.pid, static_cast<uint64_t>(pid), 4);
  m.put(at + l.tgid, static_cast<uint64_t>(pid), 4);
  m.put_str(at + l.comm, comm);
}

}  // namespace

TEST_CASE("guest tasks: the list from init_task, kernel threads told apart") {
  FakeMemory m;
  TaskLayout l = layout();
  GuestSymbols s;
  s.init_task = 0xffffffff82a1aa40;
  add_task(m, l, s.init_task, 0xffff888004000000, 0, "swapper/0", true);
  add_task(m, l, 0xffff888004000000, 0xffff888004100000, 1, "init", false);
  add_task(m, l, 0xffff888004100000, 0xffff888004200000, 2, "kthreadd", true);
  add_task(m, l, 0xffff888004200000, s.init_task, 85, "sleep", false);
  auto tasks = walk_tasks(m.reader(), s, l);
  REQUIRE(tasks);
  REQUIRE(tasks->size() == 4);
  CHECK((*tasks)[0].idle);
  CHECK((*tasks)[1].comm == "init");
  CHECK_FALSE((*tasks)[1].kernel_thread);
  CHECK((*tasks)[2].kernel_thread);
  CHECK((*tasks)[3].pid == 85);
  CHECK((*tasks)[3].comm == "sleep");
  CHECK((*tasks)[3].address == 0xffff888004200000);
}

TEST_CASE("guest tasks: a zombie (no mm, PF_EXITING) is a process, not a kernel thread") {
  FakeMemory m;
  TaskLayout l = layout();
  GuestSymbols s;
  s.init_task = 0x10000;
  add_task(m, l, 0x10000, 0x20000, 0, "swapper/0", true);
  add_task(m, l, 0x20000, 0x10000, 105, "sleep", false);
  m.put(0x20000 + l.mm, 0, 8);              // exit_mm let its memory go
  m.put(0x20000 + l.flags, 0x400004, 4);    // PF_EXITING
  auto tasks = walk_tasks(m.reader(), s, l);
  REQUIRE(tasks);
  CHECK((*tasks)[1].exiting);
  CHECK_FALSE((*tasks)[1].kernel_thread);
  m.put(0x20000 + l.flags, 0x400000, 4);    // no mm and not exiting: a kernel thread
  tasks = walk_tasks(m.reader(), s, l);
  REQUIRE(tasks);
  CHECK((*tasks)[1].kernel_thread);
}

TEST_CASE("guest tasks: the start time where the layout has one, none where it has not") {
  FakeMemory m;
  TaskLayout l = layout();
  GuestSymbols s;
  s.init_task = 0x10000;
  add_task(m, l, 0x10000, 0x20000, 0, "swapper/0", true);
  add_task(m, l, 0x20000, 0x10000, 85, "sleep", false);
  auto without = walk_tasks(m.reader(), s, l);
  REQUIRE(without);
  CHECK_FALSE((*without)[1].start_ns);
  l.start = 0x310;  // beyond comm: the read is widened to take it
  m.put(0x20000 + 0x310, 12'340'000'000ull, 8);
  auto with = walk_tasks(m.reader(), s, l);
  REQUIRE(with);
  REQUIRE((*with)[1].start_ns);
  CHECK(*(*with)[1].start_ns == 12'340'000'000ull);
}

TEST_CASE("guest tasks: a broken or looping list is an error, not a hang") {
  FakeMemory m;
  TaskLayout l = layout();
  GuestSymbols s;
  s.init_task = 0x10000;
  add_task(m, l, 0x10000, 0x20000, 0, "swapper/0", true);
  add_task(m, l, 0x20000, 0x20000, 1, "init", false);  // points at itself
  auto r = walk_tasks(m.reader(), s, l);
  CHECK_FALSE(r);
  add_task(m, l, 0x20000, 0x30000, 1, "init", false);  // points at unmapped memory
  CHECK_FALSE(walk_tasks(m.reader(), s, l));
  add_task(m, l, 0x20000, 0, 1, "init", false);  // a null next
  CHECK_FALSE(walk_tasks(m.reader(), s, l));
}

TEST_CASE("guest tasks: each CPU's current task through __per_cpu_offset") {
  FakeMemory m;
  TaskLayout l = layout();
  GuestSymbols s;
  s.per_cpu_offset = 0xffffffff8241cb60;
  s.current_task = 0x1fb80;
  m.put(s.per_cpu_offset, 0xffff88800f400000, 8);
  m.put(s.per_cpu_offset + 8, 0xffff88800f500000, 8);
  m.put(0xffff88800f400000 + 0x1fb80, 0xffffffff82a1aa40, 8);
  m.put(0xffff88800f500000 + 0x1fb80, 0xffff888004a69840, 8);
  CHECK(*current_task_of_cpu(m.reader(), s, l, 0) == 0xffffffff82a1aa40);
  CHECK(*current_task_of_cpu(m.reader(), s, l, 1) == 0xffff888004a69840);
  CHECK_FALSE(current_task_of_cpu(m.reader(), s, l, 2));  // no such CPU: unmapped
  // Newer kernels: pcpu_hot.current_task.
  s.current_task.reset();
  s.pcpu_hot = 0x1fb00;
  l.pcpu_hot_current = 0x80;
  CHECK(*current_task_of_cpu(m.reader(), s, l, 1) == 0xffff888004a69840);
}

TEST_CASE("guest symbols from kallsyms lines") {
  std::string text =
      "ffffffff82a1aa40 D init_task\n"
      "ffffffff8241cb60 R __per_cpu_offset\n"
      "000000000001fb80 A current_task\n"
      "ffffffff82b8a000 R __start_BTF\n"
      "ffffffff82fb2000 R __stop_BTF\n";
  auto s = guest_symbols_from_kallsyms(text);
  REQUIRE(s);
  CHECK(s->init_task == 0xffffffff82a1aa40);
  CHECK(*s->current_task == 0x1fb80);
  CHECK(s->stop_btf - s->start_btf == 0x428000);
  CHECK_FALSE(guest_symbols_from_kallsyms("ffffffff82a1aa40 D init_task\n"));
  CHECK_FALSE(guest_symbols_from_kallsyms(
      "0000000000000000 D init_task\n0000000000000000 R __per_cpu_offset\n0000000000000000 A current_task\n"
      "0000000000000000 R __start_BTF\n0000000000000000 R __stop_BTF\n"));  // addresses hidden
}

TEST_CASE("task_struct offsets from this machine's kernel BTF") {
  std::ifstream f("/sys/kernel/btf/vmlinux", std::ios::binary);
  if (!f) {
    MESSAGE("no /sys/kernel/btf/vmlinux here: skipped");
    return;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  auto l = task_layout_from_btf(ss.str());
  REQUIRE(l);
  CHECK(l->comm > l->pid);
  CHECK(l->tgid == l->pid + 4);
  CHECK(l->tasks > 0);
  // start_boottime (5.5 and later) or start_time: every kernel has one.
  REQUIRE(l->start);
  CHECK(*l->start > 0);
  CHECK_FALSE(task_layout_from_btf("not btf at all, but long enough to look"));
  CHECK_FALSE(task_layout_from_btf(ss.str().substr(0, 100)));
}

TEST_CASE("base64 as the guest agent sends it") {
  CHECK(*base64_decode("aGVsbG8=") == "hello");
  CHECK(*base64_decode("aGVs\nbG8gd29ybGQ=") == "hello world");
  CHECK(*base64_decode("") == "");
  CHECK_FALSE(base64_decode("a$b="));
  CHECK_FALSE(base64_decode("aGVs=bG8"));
}

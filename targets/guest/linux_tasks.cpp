#include "targets/guest/linux_tasks.h"

#include <bpf/btf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "targets/local_kernel/local_kernel_internal.h"

namespace dbgstub::guest {
namespace {

uint64_t le(const std::string& bytes, std::size_t at, std::size_t width) {
  uint64_t v = 0;
  for (std::size_t i = 0; i < width && at + i < bytes.size(); ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return v;
}

Result<uint64_t> read_u64(const ReadMemory& read, uint64_t addr) {
  auto b = read(addr, 8);
  if (!b) return b.error();
  if (b->size() != 8) return make_error(5, "short read");
  return le(*b, 0, 8);
}

// Byte offset of member `name` of struct `type_name` (found in anonymous
// sub-structs and unions too, as the kernel nests some fields).
std::optional<uint32_t> member_offset(const btf* b, const btf_type* t, const char* name, uint32_t base_bits = 0,
                                      int depth = 0) {
  if (depth > 8 || !btf_is_composite(t)) return std::nullopt;
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i) {
    uint32_t bits = base_bits + btf_member_bit_offset(t, i);
    const char* mname = btf__name_by_offset(b, m[i].name_off);
    if (mname && *mname) {
      if (std::strcmp(mname, name) == 0) return bits / 8;
      continue;
    }
    int32_t rid = btf__resolve_type(b, m[i].type);
    if (rid <= 0) continue;
    const btf_type* inner = btf__type_by_id(b, static_cast<uint32_t>(rid));
    if (auto off = member_offset(b, inner, name, bits, depth + 1)) return off;
  }
  return std::nullopt;
}

struct BtfFree {
  void operator()(btf* b) const { btf__free(b); }
};

}  // namespace

Result<TaskLayout> task_layout_from_btf(std::string_view raw) {
  if (raw.size() < 24) return make_error(22, "BTF data is too short");
  errno = 0;
  std::unique_ptr<btf, BtfFree> b(btf__new(raw.data(), static_cast<uint32_t>(raw.size())));
  if (!b) return make_error(errno ? errno : EINVAL, "the guest kernel's BTF could not be parsed");
  auto find_struct = [&](const char* name) -> const btf_type* {
    int32_t id = btf__find_by_name_kind(b.get(), name, BTF_KIND_STRUCT);
    return id > 0 ? btf__type_by_id(b.get(), static_cast<uint32_t>(id)) : nullptr;
  };
  const btf_type* task = find_struct("task_struct");
  if (!task) return make_error(2, "the guest kernel's BTF has no struct task_struct");
  TaskLayout l;
  struct Field { const char* name; uint32_t* out; };
  for (Field f : {Field{"tasks", &l.tasks}, Field{"pid", &l.pid}, Field{"tgid", &l.tgid}, Field{"comm", &l.comm},
                  Field{"mm", &l.mm}, Field{"flags", &l.flags}}) {
    auto off = member_offset(b.get(), task, f.name);
    if (!off) return make_error(2, std::string("struct task_struct has no member ") + f.name);
    *f.out = *off;
  }
  l.start = member_offset(b.get(), task, "start_boottime");
  if (!l.start) l.start = member_offset(b.get(), task, "real_start_time");
  if (!l.start) l.start = member_offset(b.get(), task, "start_time");
  if (const btf_type* hot = find_struct("pcpu_hot")) l.pcpu_hot_current = member_offset(b.get(), hot, "current_task");
  return l;
}

const std::vector<std::string>& guest_symbol_names() {
  static const std::vector<std::string> names = {"init_task", "__per_cpu_offset", "current_task",
                                                 "pcpu_hot", "__start_BTF", "__stop_BTF"};
  return names;
}

Result<GuestSymbols> guest_symbols_from_kallsyms(std::string_view text) {
  auto table = lk::SymbolTable::parse(text);
  if (table.addresses_hidden())
    return make_error(13, "the guest's kallsyms hides addresses (kernel.kptr_restrict, or not read as root)");
  auto one = [&](const char* name) -> std::optional<uint64_t> {
    auto found = table.find(name, std::string("vmlinux"));
    if (found.empty()) return std::nullopt;
    return found.front()->addr;
  };
  GuestSymbols s;
  auto need = [&](const char* name, uint64_t& out) -> Status {
    auto v = one(name);
    if (!v) return make_error(2, std::string("the guest's kallsyms has no ") + name);
    out = *v;
    return ok_status();
  };
  for (auto [name, out] : {std::pair{"init_task", &s.init_task}, std::pair{"__per_cpu_offset", &s.per_cpu_offset},
                           std::pair{"__start_BTF", &s.start_btf}, std::pair{"__stop_BTF", &s.stop_btf}})
    if (auto st = need(name, *out); !st) return st.error();
  s.current_task = one("current_task");
  s.pcpu_hot = one("pcpu_hot");
  if (!s.current_task && !s.pcpu_hot) return make_error(2, "the guest's kallsyms has neither current_task nor pcpu_hot");
  if (s.stop_btf <= s.start_btf) return make_error(22, "the guest's __start_BTF/__stop_BTF are inconsistent");
  return s;
}

Result<GuestTask> read_task(const ReadMemory& read, uint64_t address, const TaskLayout& l) {
  uint32_t end = std::max({l.tasks + 16, l.pid + 4, l.tgid + 4, l.comm + 16, l.mm + 8, l.flags + 4});
  uint32_t start = std::min({l.tasks, l.pid, l.tgid, l.comm, l.mm, l.flags});
  if (l.start) {
    end = std::max(end, *l.start + 8);
    start = std::min(start, *l.start);
  }
  auto b = read(address + start, end - start);
  if (!b) return b.error();
  if (b->size() != end - start) return make_error(5, "short read of a task");
  auto at = [&](uint32_t off) { return static_cast<std::size_t>(off - start); };
  GuestTask t;
  t.address = address;
  t.pid = static_cast<int>(static_cast<int32_t>(le(*b, at(l.pid), 4)));
  t.tgid = static_cast<int>(static_cast<int32_t>(le(*b, at(l.tgid), 4)));
  std::string comm = b->substr(at(l.comm), 16);
  t.comm = comm.substr(0, comm.find('\0'));
  uint64_t flags = le(*b, at(l.flags), 4);
  uint64_t mm = le(*b, at(l.mm), 8);
  if (l.start) t.start_ns = le(*b, at(*l.start), 8);
  t.idle = t.pid == 0;
  // No mm: a kernel thread, or a process that is exiting or has exited
  // (a zombie keeps its task_struct until its parent reaps it, but exit_mm
  // has let its memory go); PF_EXITING tells the two apart.
  t.exiting = (flags & kPfExiting) != 0;
  t.kernel_thread = (flags & kPfKthread) != 0 || (mm == 0 && !t.exiting);
  return t;
}

Result<std::vector<GuestTask>> walk_tasks(const ReadMemory& read, const GuestSymbols& syms, const TaskLayout& l,
                                          std::size_t limit) {
  std::vector<GuestTask> out;
  std::set<uint64_t> seen;
  uint64_t task = syms.init_task;
  for (std::size_t n = 0; n < limit; ++n) {
    if (!seen.insert(task).second) return make_error(22, "the guest's task list loops back on itself");
    auto t = read_task(read, task, l);
    if (!t) return make_error(t.error().code, "reading the task at " + std::to_string(task) + ": " + t.error().message);
    out.push_back(*t);
    auto next = read_u64(read, task + l.tasks);  // tasks.next: &next_task->tasks
    if (!next) return next.error();
    if (*next < l.tasks) return make_error(22, "the guest's task list is broken");
    task = *next - l.tasks;
    if (task == syms.init_task) return out;
  }
  return make_error(7, "the guest's task list is longer than " + std::to_string(limit) + " entries");
}

Result<uint64_t> current_task_of_cpu(const ReadMemory& read, const GuestSymbols& syms, const TaskLayout& l,
                                     unsigned cpu) {
  auto base = read_u64(read, syms.per_cpu_offset + 8ull * cpu);
  if (!base) return base.error();
  uint64_t var;
  if (syms.pcpu_hot && l.pcpu_hot_current) var = *syms.pcpu_hot + *l.pcpu_hot_current;
  else if (syms.current_task) var = *syms.current_task;
  else return make_error(2, "no way to find the current task");
  auto task = read_u64(read, *base + var);
  if (!task) return task.error();
  if (*task == 0) return make_error(2, "CPU " + std::to_string(cpu) + " has no current task");
  return *task;
}

}  // namespace dbgstub::guest

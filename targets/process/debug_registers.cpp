// x86 hardware debug registers through ptrace (PEEKUSER/POKEUSER on
// struct user's u_debugreg[]): DR0-DR3 hold addresses, DR6 reports hits,
// DR7 enables slots and gives each a kind (RW) and length (LEN).
#include <sys/ptrace.h>
#include <sys/user.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "targets/process/x86_registers.h"

namespace dbgstub::x86 {
namespace {

constexpr int kSlots = 4;
constexpr uint64_t kDr7LocalSlowdown = 1u << 8;  // LE: as GDB sets it; ignored by modern CPUs

// One aligned piece of a watched range that a single slot can cover.
struct Piece {
  uint64_t addr;
  int len;
};

// Splits [addr, addr+len) into naturally aligned 1/2/4/8-byte pieces, each
// as large as alignment and the remaining length allow (the same split
// GDB's x86-dregs uses for unaligned or odd-sized watchpoints).
std::vector<Piece> split(uint64_t addr, int len) {
  std::vector<Piece> out;
  while (len > 0) {
    int size = 8;
    while (size > len || (addr % static_cast<uint64_t>(size)) != 0) size /= 2;
    out.push_back({addr, size});
    addr += static_cast<uint64_t>(size);
    len -= size;
  }
  return out;
}

Status validate(int type, uint64_t addr, int len) {
  if (type < 1 || type > 4) return make_error(22, "unsupported hardware breakpoint type");
  // x86 has no read-only watch: a read slot (RW=11) fires on writes too.
  // Refused as gdbserver does, so that GDB emulates read watchpoints with
  // access ones and tells reads from writes by the value.
  if (type == 3) return make_error(95, "read watchpoints are not supported on x86");
  // GDB's Z1 kind is 1 for x86; an exec slot must have LEN=00.
  if (type == 1 && len != 1) return make_error(22, "hardware breakpoint length must be 1");
  // Four slots cover at most 32 bytes; anything longer can never fit.
  if (len < 1 || len > 8 * kSlots) return make_error(22, "unsupported watchpoint length");
  if (addr + static_cast<uint64_t>(len) < addr) return make_error(22, "watched range wraps");
  return ok_status();
}

uint64_t dr7_rw(int type) {
  switch (type) {
    case 1: return 0b00;  // instruction execution
    case 2: return 0b01;  // data writes
    default: return 0b11; // reads or writes (access, 4)
  }
}

uint64_t dr7_len(int len) {
  switch (len) {
    case 2: return 0b01;
    case 4: return 0b11;
    case 8: return 0b10;
    default: return 0b00;  // 1, and every exec breakpoint
  }
}

long debugreg_offset(int i) {
  return static_cast<long>(offsetof(struct user, u_debugreg) + static_cast<size_t>(i) * sizeof(long));
}

Status poke_dr(pid_t tid, int i, uint64_t value) {
  errno = 0;
  if (ptrace(PTRACE_POKEUSER, tid, reinterpret_cast<void*>(debugreg_offset(i)),
             reinterpret_cast<void*>(value)) != 0) {
    int e = errno ? errno : 5;
    return make_error(e, "PTRACE_POKEUSER DR" + std::to_string(i) + ": " + std::strerror(e));
  }
  return ok_status();
}

}  // namespace

Status DebugRegisterState::add(int type, uint64_t addr, int len) {
  auto st = validate(type, addr, len);
  if (!st) return st;
  const std::vector<Piece> pieces = split(addr, len);
  // Already there (gdb sends Z again for a breakpoint whose target-side
  // conditions changed): nothing new to insert, as gdbserver.
  bool all_present = true;
  for (const Piece& piece : pieces) {
    bool present = false;
    for (const DebugSlot& s : slots_)
      present = present || (s.used && s.type == type && s.addr == piece.addr && s.len == piece.len);
    all_present = all_present && present;
  }
  if (all_present) return ok_status();
  int free_slots[kSlots];
  size_t nfree = 0;
  for (int i = 0; i < kSlots; ++i)
    if (!slots_[i].used) free_slots[nfree++] = i;
  // All or nothing: a watchpoint covered only in part would miss accesses.
  if (pieces.size() > nfree) return make_error(28, "no free hardware debug registers");
  for (size_t p = 0; p < pieces.size(); ++p)
    slots_[free_slots[p]] = DebugSlot{true, pieces[p].addr, type, pieces[p].len};
  return ok_status();
}

Status DebugRegisterState::remove(int type, uint64_t addr, int len) {
  auto st = validate(type, addr, len);
  if (!st) return st;
  const std::vector<Piece> pieces = split(addr, len);
  // Find every piece first, so that a bad request removes nothing.
  int found[kSlots];
  bool taken[kSlots] = {false, false, false, false};
  if (pieces.size() > static_cast<size_t>(kSlots)) return make_error(2, "no such hardware watchpoint");
  for (size_t p = 0; p < pieces.size(); ++p) {
    found[p] = -1;
    for (int i = 0; i < kSlots; ++i) {
      const DebugSlot& s = slots_[i];
      if (!taken[i] && s.used && s.type == type && s.addr == pieces[p].addr && s.len == pieces[p].len) {
        found[p] = i;
        taken[i] = true;
        break;
      }
    }
    if (found[p] < 0) return make_error(2, "no such hardware watchpoint");
  }
  for (size_t p = 0; p < pieces.size(); ++p) slots_[found[p]] = DebugSlot{};
  return ok_status();
}

bool DebugRegisterState::empty() const {
  for (const DebugSlot& s : slots_)
    if (s.used) return false;
  return true;
}

Status DebugRegisterState::apply(pid_t tid) const {
  uint64_t dr7 = 0;
  for (int i = 0; i < kSlots; ++i) {
    const DebugSlot& s = slots_[i];
    if (!s.used) continue;
    dr7 |= uint64_t{1} << (2 * i);                       // L<i>: local enable
    dr7 |= dr7_rw(s.type) << (16 + 4 * i);               // R/W<i>
    dr7 |= dr7_len(s.type == 1 ? 1 : s.len) << (18 + 4 * i);  // LEN<i>
  }
  if (dr7) dr7 |= kDr7LocalSlowdown;
  // Disable everything first: the kernel checks each enabled slot's address
  // against its length and kind, so changing an address under an enabled
  // DR7 entry with a different length can be refused.
  auto st = poke_dr(tid, 7, 0);
  if (!st) return st;
  for (int i = 0; i < kSlots; ++i) {
    if (!slots_[i].used) continue;
    st = poke_dr(tid, i, slots_[i].addr);
    if (!st) return st;
  }
  if (dr7) return poke_dr(tid, 7, dr7);
  return ok_status();
}

int DebugRegisterState::hit_slot(pid_t tid) {
  errno = 0;
  long dr6 = ptrace(PTRACE_PEEKUSER, tid, reinterpret_cast<void*>(debugreg_offset(6)), nullptr);
  if (errno != 0) return -1;
  int hit = -1;
  for (int i = 0; i < kSlots; ++i) {
    if (dr6 & (1L << i)) {
      hit = i;
      break;
    }
  }
  // DR6 bits are sticky: clear them so the next stop is not misread as a hit.
  if (dr6 != 0) (void)poke_dr(tid, 6, 0);
  return hit;
}

}  // namespace dbgstub::x86

// x86-64 Linux register file: the layout GDB 13 expects (identical to what
// gdbserver 13 sends for amd64-avx-linux), and the conversion to and from
// the kernel's user_regs_struct and NT_X86_XSTATE (XSAVE) buffers.
//
// Layout verified against the real gdbserver 13.1 on this machine
// ("maint print remote-registers" and "maint print xml-tdesc"):
//   regno 0-15 rax..r15, 16 rip, 17 eflags, 18-23 cs ss ds es fs gs,
//   24-31 st0-7, 32-39 fctrl..fop, 40-55 xmm0-15, 56 mxcsr, 57 orig_rax,
//   58 fs_base, 59 gs_base, 60-75 ymm0h-15h  ->  'g' packet = 816 bytes.
// gdbserver additionally sends org.gnu.gdb.i386.pkeys (pkru, regno 76,
// 4 bytes; 'g' = 820 bytes) when the CPU has PKU; we describe only the AVX
// feature set, and the first 816 bytes are identical.
#include "targets/process/x86_registers.h"

#include <cpuid.h>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace dbgstub::x86 {
namespace {

// Where a register lives in the kernel's buffers.
enum class Kind {
  Gpr64,    // 8 bytes of user_regs_struct at `index` (a byte offset)
  Gpr32,    // low 4 bytes of a user_regs_struct field (eflags, segments)
  St,       // st0-7: 10 bytes at FXSAVE 32 + 16*index
  Fctrl, Fstat, Ftag, Fiseg, Fioff, Foseg, Fooff, Fop,
  Xmm,      // FXSAVE 160 + 16*index
  Mxcsr,
  YmmH,     // XSAVE AVX component + 16*index
};

struct Slot {
  Kind kind;
  int index;
  bool xml_group;  // emit group= in target.xml (only where GDB's own XML does)
};

// FXSAVE legacy region offsets (the first 512 bytes of the XSAVE area, and
// exactly what PTRACE_GETFPREGS returns).
constexpr size_t kFcw = 0, kFsw = 2, kFtw = 4, kFop = 6, kFip = 8, kFcs = 12,
                 kFdp = 16, kFds = 20, kMxcsr = 24, kSt = 32, kXmm = 160;
constexpr size_t kFxsaveSize = 512;
constexpr size_t kXcr0Offset = 464;      // sw_reserved: the kernel puts XCR0 here
constexpr size_t kXstateBvOffset = 512;  // XSAVE header
constexpr uint64_t kX87 = 1, kSse = 2, kAvx = 4;
constexpr uint16_t kFctrlInit = 0x037f;
constexpr uint32_t kMxcsrInit = 0x1f80;

struct Table {
  std::vector<RegisterInfo> info;
  std::vector<Slot> slots;
  int total = 0;
};

const char* const kGprSet = "General Purpose Registers";
const char* const kFpSet = "Floating Point Registers";
const char* const kAvxSet = "Advanced Vector Extensions";

const Table& table() {
  static const Table t = [] {
    Table t;
    auto add = [&t](RegisterInfo r, Slot s) {
      r.offset = t.total;
      t.total += r.bitsize / 8;
      t.info.push_back(std::move(r));
      t.slots.push_back(s);
    };
    const std::string core = "org.gnu.gdb.i386.core";
    // GPRs in GDB's order; dwarf numbers from the x86-64 psABI (which is
    // rax rdx rcx rbx rsi rdi rbp rsp, not GDB's order).
    struct G { const char* name; size_t off; const char* type; int dwarf; const char* generic; };
    const G gprs[] = {
        {"rax", offsetof(user_regs_struct, rax), "int64", 0, ""},
        {"rbx", offsetof(user_regs_struct, rbx), "int64", 3, ""},
        {"rcx", offsetof(user_regs_struct, rcx), "int64", 2, "arg4"},
        {"rdx", offsetof(user_regs_struct, rdx), "int64", 1, "arg3"},
        {"rsi", offsetof(user_regs_struct, rsi), "int64", 4, "arg2"},
        {"rdi", offsetof(user_regs_struct, rdi), "int64", 5, "arg1"},
        {"rbp", offsetof(user_regs_struct, rbp), "data_ptr", 6, "fp"},
        {"rsp", offsetof(user_regs_struct, rsp), "data_ptr", 7, "sp"},
        {"r8", offsetof(user_regs_struct, r8), "int64", 8, "arg5"},
        {"r9", offsetof(user_regs_struct, r9), "int64", 9, "arg6"},
        {"r10", offsetof(user_regs_struct, r10), "int64", 10, ""},
        {"r11", offsetof(user_regs_struct, r11), "int64", 11, ""},
        {"r12", offsetof(user_regs_struct, r12), "int64", 12, ""},
        {"r13", offsetof(user_regs_struct, r13), "int64", 13, ""},
        {"r14", offsetof(user_regs_struct, r14), "int64", 14, ""},
        {"r15", offsetof(user_regs_struct, r15), "int64", 15, ""},
        {"rip", offsetof(user_regs_struct, rip), "code_ptr", 16, "pc"},
    };
    for (const G& g : gprs)
      add({g.name, 64, 0, g.type, "general", core, "uint", "hex", kGprSet, g.dwarf, g.generic},
          {Kind::Gpr64, static_cast<int>(g.off), false});
    add({"eflags", 32, 0, "i386_eflags", "general", core, "uint", "hex", kGprSet, 49, "flags"},
        {Kind::Gpr32, static_cast<int>(offsetof(user_regs_struct, eflags)), false});
    const G segs[] = {
        {"cs", offsetof(user_regs_struct, cs), "int32", 51, ""},
        {"ss", offsetof(user_regs_struct, ss), "int32", 52, ""},
        {"ds", offsetof(user_regs_struct, ds), "int32", 53, ""},
        {"es", offsetof(user_regs_struct, es), "int32", 50, ""},
        {"fs", offsetof(user_regs_struct, fs), "int32", 54, ""},
        {"gs", offsetof(user_regs_struct, gs), "int32", 55, ""},
    };
    for (const G& g : segs)
      add({g.name, 32, 0, g.type, "general", core, "uint", "hex", kGprSet, g.dwarf, ""},
          {Kind::Gpr32, static_cast<int>(g.off), false});
    // lldb shows 80-bit x87 values as byte vectors (as its own x86-64
    // register context does); GDB knows the i387_ext type natively.
    for (int i = 0; i < 8; ++i)
      add({"st" + std::to_string(i), 80, 0, "i387_ext", "float", core, "vector", "vector-uint8",
           kFpSet, 33 + i, ""},
          {Kind::St, i, false});
    struct F { const char* name; Kind kind; int dwarf; };
    const F fpctl[] = {{"fctrl", Kind::Fctrl, 65}, {"fstat", Kind::Fstat, 66},
                       {"ftag", Kind::Ftag, -1},   {"fiseg", Kind::Fiseg, -1},
                       {"fioff", Kind::Fioff, -1}, {"foseg", Kind::Foseg, -1},
                       {"fooff", Kind::Fooff, -1}, {"fop", Kind::Fop, -1}};
    for (const F& f : fpctl)
      add({f.name, 32, 0, "int", "float", core, "uint", "hex", kFpSet, f.dwarf, ""},
          {f.kind, 0, true});
    const std::string sse = "org.gnu.gdb.i386.sse";
    for (int i = 0; i < 16; ++i)
      add({"xmm" + std::to_string(i), 128, 0, "vec128", "sse", sse, "vector", "vector-uint8",
           kFpSet, 17 + i, ""},
          {Kind::Xmm, i, false});
    add({"mxcsr", 32, 0, "i386_mxcsr", "vector", sse, "uint", "hex", kFpSet, 64, ""},
        {Kind::Mxcsr, 0, true});
    add({"orig_rax", 64, 0, "int", "system", "org.gnu.gdb.i386.linux", "uint", "hex", kGprSet, -1,
         ""},
        {Kind::Gpr64, static_cast<int>(offsetof(user_regs_struct, orig_rax)), false});
    const std::string segf = "org.gnu.gdb.i386.segments";
    add({"fs_base", 64, 0, "int", "system", segf, "uint", "hex", kGprSet, 58, ""},
        {Kind::Gpr64, static_cast<int>(offsetof(user_regs_struct, fs_base)), false});
    add({"gs_base", 64, 0, "int", "system", segf, "uint", "hex", kGprSet, 59, ""},
        {Kind::Gpr64, static_cast<int>(offsetof(user_regs_struct, gs_base)), false});
    const std::string avx = "org.gnu.gdb.i386.avx";
    for (int i = 0; i < 16; ++i)
      add({"ymm" + std::to_string(i) + "h", 128, 0, "uint128", "vector", avx, "vector",
           "vector-uint8", kAvxSet, -1, ""},
          {Kind::YmmH, i, false});
    return t;
  }();
  return t;
}

// Type definitions GDB's feature files carry (64bit-core.xml, 64bit-sse.xml);
// i387_ext, bfloat16, ieee_half, uint128, code_ptr and data_ptr are GDB
// built-ins.  Kept byte-for-byte like gdbserver's so GDB builds the same
// types (and from them the ymm/eax/al pseudo registers).
const char kEflagsType[] =
    "    <flags id=\"i386_eflags\" size=\"4\">\n"
    "      <field name=\"CF\" start=\"0\" end=\"0\" type=\"bool\"/>\n"
    "      <field name=\"\" start=\"1\" end=\"1\" type=\"bool\"/>\n"
    "      <field name=\"PF\" start=\"2\" end=\"2\" type=\"bool\"/>\n"
    "      <field name=\"AF\" start=\"4\" end=\"4\" type=\"bool\"/>\n"
    "      <field name=\"ZF\" start=\"6\" end=\"6\" type=\"bool\"/>\n"
    "      <field name=\"SF\" start=\"7\" end=\"7\" type=\"bool\"/>\n"
    "      <field name=\"TF\" start=\"8\" end=\"8\" type=\"bool\"/>\n"
    "      <field name=\"IF\" start=\"9\" end=\"9\" type=\"bool\"/>\n"
    "      <field name=\"DF\" start=\"10\" end=\"10\" type=\"bool\"/>\n"
    "      <field name=\"OF\" start=\"11\" end=\"11\" type=\"bool\"/>\n"
    "      <field name=\"NT\" start=\"14\" end=\"14\" type=\"bool\"/>\n"
    "      <field name=\"RF\" start=\"16\" end=\"16\" type=\"bool\"/>\n"
    "      <field name=\"VM\" start=\"17\" end=\"17\" type=\"bool\"/>\n"
    "      <field name=\"AC\" start=\"18\" end=\"18\" type=\"bool\"/>\n"
    "      <field name=\"VIF\" start=\"19\" end=\"19\" type=\"bool\"/>\n"
    "      <field name=\"VIP\" start=\"20\" end=\"20\" type=\"bool\"/>\n"
    "      <field name=\"ID\" start=\"21\" end=\"21\" type=\"bool\"/>\n"
    "    </flags>\n";

const char kSseTypes[] =
    "    <vector id=\"v8bf16\" type=\"bfloat16\" count=\"8\"/>\n"
    "    <vector id=\"v8h\" type=\"ieee_half\" count=\"8\"/>\n"
    "    <vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n"
    "    <vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n"
    "    <vector id=\"v16i8\" type=\"int8\" count=\"16\"/>\n"
    "    <vector id=\"v8i16\" type=\"int16\" count=\"8\"/>\n"
    "    <vector id=\"v4i32\" type=\"int32\" count=\"4\"/>\n"
    "    <vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
    "    <union id=\"vec128\">\n"
    "      <field name=\"v8_bfloat16\" type=\"v8bf16\"/>\n"
    "      <field name=\"v8_half\" type=\"v8h\"/>\n"
    "      <field name=\"v4_float\" type=\"v4f\"/>\n"
    "      <field name=\"v2_double\" type=\"v2d\"/>\n"
    "      <field name=\"v16_int8\" type=\"v16i8\"/>\n"
    "      <field name=\"v8_int16\" type=\"v8i16\"/>\n"
    "      <field name=\"v4_int32\" type=\"v4i32\"/>\n"
    "      <field name=\"v2_int64\" type=\"v2i64\"/>\n"
    "      <field name=\"uint128\" type=\"uint128\"/>\n"
    "    </union>\n"
    "    <flags id=\"i386_mxcsr\" size=\"4\">\n"
    "      <field name=\"IE\" start=\"0\" end=\"0\" type=\"bool\"/>\n"
    "      <field name=\"DE\" start=\"1\" end=\"1\" type=\"bool\"/>\n"
    "      <field name=\"ZE\" start=\"2\" end=\"2\" type=\"bool\"/>\n"
    "      <field name=\"OE\" start=\"3\" end=\"3\" type=\"bool\"/>\n"
    "      <field name=\"UE\" start=\"4\" end=\"4\" type=\"bool\"/>\n"
    "      <field name=\"PE\" start=\"5\" end=\"5\" type=\"bool\"/>\n"
    "      <field name=\"DAZ\" start=\"6\" end=\"6\" type=\"bool\"/>\n"
    "      <field name=\"IM\" start=\"7\" end=\"7\" type=\"bool\"/>\n"
    "      <field name=\"DM\" start=\"8\" end=\"8\" type=\"bool\"/>\n"
    "      <field name=\"ZM\" start=\"9\" end=\"9\" type=\"bool\"/>\n"
    "      <field name=\"OM\" start=\"10\" end=\"10\" type=\"bool\"/>\n"
    "      <field name=\"UM\" start=\"11\" end=\"11\" type=\"bool\"/>\n"
    "      <field name=\"PM\" start=\"12\" end=\"12\" type=\"bool\"/>\n"
    "      <field name=\"FZ\" start=\"15\" end=\"15\" type=\"bool\"/>\n"
    "    </flags>\n";

// --- little-endian field access into byte buffers -------------------------

uint64_t get_le(const std::vector<uint8_t>& b, size_t off, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b[off + i]) << (8 * i);
  return v;
}
void put_le(std::vector<uint8_t>& b, size_t off, size_t n, uint64_t v) {
  for (size_t i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_le(const std::string& s) {
  uint64_t v = 0;
  for (size_t i = 0; i < s.size() && i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(s[i])) << (8 * i);
  return v;
}
std::string le_string(uint64_t v, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// The tag GDB wants for one physical x87 register whose abridged tag bit
// says "not empty": 0 valid, 1 zero, 2 special (same rules as i387 code in
// GDB/gdbserver).  `raw` is the 80-bit value.
int x87_tag(const uint8_t* raw) {
  const bool integer = raw[7] & 0x80;
  const unsigned exponent = ((raw[9] & 0x7fu) << 8) | raw[8];
  bool fraction_zero = (raw[7] & 0x7f) == 0;
  for (int i = 0; i < 7; ++i) fraction_zero = fraction_zero && raw[i] == 0;
  if (exponent == 0x7fff) return 2;
  if (exponent == 0) return (fraction_zero && !integer) ? 1 : 2;
  return integer ? 0 : 2;
}

// The XSAVE buffer size the kernel reports for NT_X86_XSTATE.  The request
// starts generous (CPUID's maximum for all supported features, at least a
// page); when the kernel fills the whole request the buffer may have been
// truncated, so the request doubles.  The request that worked is remembered
// (it is the same for every thread of this machine).
std::atomic<size_t> g_xstate_request{0};

size_t initial_xstate_request() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  size_t want = 4096;
  if (__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx) && ecx > want) want = ecx;
  return (want + 63) & ~size_t{63};  // the kernel wants a multiple of 8
}

// Offset of the AVX (YMM_Hi128) component in the standard-format XSAVE
// area: CPUID(0xD, 2).EBX, 576 on every CPU so far.
size_t avx_offset() {
  static const size_t off = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(0xd, 2, &eax, &ebx, &ecx, &edx) && eax >= 256 && ebx >= 576) return size_t{ebx};
    return size_t{0};
  }();
  return off;
}

Error errno_error(const char* what) {
  int e = errno;
  return make_error(e ? e : 5, std::string(what) + ": " + std::strerror(e));
}

}  // namespace

const std::vector<RegisterInfo>& registers() { return table().info; }
int register_count() { return static_cast<int>(table().info.size()); }
int regno_of(const std::string& name) {
  const auto& regs = table().info;
  for (size_t i = 0; i < regs.size(); ++i)
    if (regs[i].name == name) return static_cast<int>(i);
  return -1;
}
int pc_regno() { return 16; }
int sp_regno() { return 7; }
int fp_regno() { return 6; }

namespace {

std::string build_target_xml() {
  const Table& t = table();
  std::string x =
      "<?xml version=\"1.0\"?>\n"
      "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
      "<target>\n"
      "  <architecture>i386:x86-64</architecture>\n"
      "  <osabi>GNU/Linux</osabi>\n";
  std::string feature;
  for (size_t i = 0; i < t.info.size(); ++i) {
    const RegisterInfo& r = t.info[i];
    if (r.feature != feature) {
      if (!feature.empty()) x += "  </feature>\n";
      feature = r.feature;
      x += "  <feature name=\"" + feature + "\">\n";
      if (feature == "org.gnu.gdb.i386.core") x += kEflagsType;
      if (feature == "org.gnu.gdb.i386.sse") x += kSseTypes;
    }
    x += "    <reg name=\"" + r.name + "\" bitsize=\"" + std::to_string(r.bitsize) +
         "\" type=\"" + r.type + "\" regnum=\"" + std::to_string(i) + "\"";
    if (t.slots[i].xml_group) x += " group=\"" + r.group + "\"";
    x += "/>\n";
  }
  x += "  </feature>\n</target>\n";
  return x;
}

}  // namespace

// Built once: the table never changes, and the document is asked for on
// every qXfer:features read and by every KD dispatcher.
std::string target_xml() {
  static const std::string doc = build_target_xml();
  return doc;
}

// ---------------------------------------------------------------------------
// ThreadRegisters

bool is_gpr(int regno) {
  if (regno < 0 || regno >= register_count()) return false;
  Kind k = table().slots[regno].kind;
  return k == Kind::Gpr64 || k == Kind::Gpr32;
}

Result<ThreadRegisters> ThreadRegisters::fetch(pid_t tid, bool with_fp) {
  ThreadRegisters r;
  r.gpr_.resize(sizeof(user_regs_struct));
  if (ptrace(PTRACE_GETREGS, tid, nullptr, r.gpr_.data()) != 0)
    return errno_error("PTRACE_GETREGS");
  if (with_fp) {
    auto st = r.load_fp(tid);
    if (!st) return st.error();
  }
  return r;
}

Status ThreadRegisters::load_fp(pid_t tid) {
  if (fp_loaded_) return ok_status();
  ThreadRegisters& r = *this;
  size_t request = g_xstate_request.load();
  if (request == 0) request = initial_xstate_request();
  for (;;) {
    std::vector<uint8_t> buf(request);
    iovec iov{buf.data(), buf.size()};
    if (ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(uintptr_t{NT_X86_XSTATE}), &iov) != 0)
      break;  // no XSAVE support (or kernel refusal): FXSAVE fallback below
    if (iov.iov_len >= request && request < (size_t{1} << 20)) {
      request *= 2;  // the kernel may have truncated: ask again, bigger
      continue;
    }
    if (iov.iov_len < kXstateBvOffset + 64) break;  // not a usable XSAVE area
    g_xstate_request.store(request);
    // Keep exactly the size the kernel reported: PTRACE_SETREGSET for
    // NT_X86_XSTATE insists on that full size (a smaller one is EFAULT,
    // gdbserver 13's "regsets_store_inferior_registers: Bad address").
    buf.resize(iov.iov_len);
    r.xsave_ = std::move(buf);
    r.have_xsave_ = true;
    break;
  }
  if (!r.have_xsave_) {
    r.xsave_.assign(sizeof(user_fpregs_struct), 0);
    static_assert(sizeof(user_fpregs_struct) == kFxsaveSize);
    if (ptrace(PTRACE_GETFPREGS, tid, nullptr, r.xsave_.data()) != 0)
      return errno_error("PTRACE_GETFPREGS");
  }
  fp_loaded_ = true;
  return ok_status();
}

namespace {

// Read-only questions about an XSAVE (or, without XSAVE, FXSAVE) buffer.
struct XView {
  const std::vector<uint8_t>& b;
  bool xsave;

  uint64_t bv() const { return xsave ? get_le(b, kXstateBvOffset, 8) : ~uint64_t{0}; }
  uint64_t xcr0() const {
    if (!xsave) return kX87 | kSse;
    uint64_t v = get_le(b, kXcr0Offset, 8);
    return v ? v : (kX87 | kSse);  // never seen; assume only what FXSAVE has
  }
  bool avx_usable() const {
    const size_t off = avx_offset();
    return xsave && (xcr0() & kAvx) && off != 0 && off + 256 <= b.size();
  }
  // Component in its init state: its bytes in the buffer are not meaningful.
  bool init(uint64_t bits) const { return (bv() & bits) == 0; }
};

// Before writing into a component in init state, fill the buffer with the
// init values it stands for, then mark the component present in XSTATE_BV;
// otherwise the kernel would ignore the write (a clear bit means "load the
// init state") or restore stale bytes.
void materialize(std::vector<uint8_t>& b, bool xsave, uint64_t bit) {
  const XView x{b, xsave};
  if (!xsave || !x.init(bit)) return;
  if (bit == kX87) {
    put_le(b, kFcw, 2, kFctrlInit);
    put_le(b, kFsw, 2, 0);
    b[kFtw] = 0;
    put_le(b, kFop, 2, 0);
    put_le(b, kFip, 8, 0);
    put_le(b, kFdp, 8, 0);
    std::memset(&b[kSt], 0, 128);
  } else if (bit == kSse) {
    std::memset(&b[kXmm], 0, 256);
  } else if (bit == kAvx) {
    std::memset(&b[avx_offset()], 0, 256);
  }
  // MXCSR is saved with either SSE or AVX; with both clear it reads as its
  // init value, so make the buffer agree before one of them becomes set.
  if ((bit == kSse || bit == kAvx) && x.init(kSse | kAvx)) put_le(b, kMxcsr, 4, kMxcsrInit);
  put_le(b, kXstateBvOffset, 8, x.bv() | bit);
}

// Full 16-bit tag word (2 bits per physical register) from the abridged
// FXSAVE byte (1 bit per physical register, set = not empty).
uint16_t full_tag(const std::vector<uint8_t>& b) {
  const unsigned top = (get_le(b, kFsw, 2) >> 11) & 7;
  const uint8_t abridged = b[kFtw];
  uint16_t tag = 0;
  for (unsigned phys = 0; phys < 8; ++phys) {
    int t = 3;
    // st_space is in stack order: physical register p is ST((p - top) mod 8).
    if (abridged & (1u << phys)) t = x87_tag(&b[kSt + 16 * ((phys + 8 - top) % 8)]);
    tag |= static_cast<uint16_t>(t << (2 * phys));
  }
  return tag;
}
uint8_t abridged_tag(uint64_t full) {
  uint8_t a = 0;
  for (unsigned phys = 0; phys < 8; ++phys)
    if (((full >> (2 * phys)) & 3) != 3) a |= static_cast<uint8_t>(1u << phys);
  return a;
}

}  // namespace

Result<std::string> ThreadRegisters::read(int regno) const {
  if (regno < 0 || regno >= register_count()) return make_error(22, "no such register");
  const Slot& s = table().slots[regno];
  const size_t size = static_cast<size_t>(table().info[regno].bitsize / 8);
  const XView x{xsave_, have_xsave_};
  const auto& b = xsave_;
  const bool x87_init = x.init(kX87);
  auto bytes = [](const std::vector<uint8_t>& v, size_t off, size_t n) {
    return std::string(reinterpret_cast<const char*>(v.data() + off), n);
  };
  switch (s.kind) {
    case Kind::Gpr64: return bytes(gpr_, static_cast<size_t>(s.index), 8);
    case Kind::Gpr32: return bytes(gpr_, static_cast<size_t>(s.index), 4);
    case Kind::St:
      if (x87_init) return std::string(10, '\0');
      return bytes(b, kSt + 16 * static_cast<size_t>(s.index), 10);
    case Kind::Fctrl: return le_string(x87_init ? kFctrlInit : get_le(b, kFcw, 2), 4);
    case Kind::Fstat: return le_string(x87_init ? 0 : get_le(b, kFsw, 2), 4);
    case Kind::Ftag: return le_string(x87_init ? 0xffff : full_tag(b), 4);
    case Kind::Fiseg: return le_string(x87_init ? 0 : get_le(b, kFcs, 2), 4);
    case Kind::Fioff: return le_string(x87_init ? 0 : get_le(b, kFip, 4), 4);
    case Kind::Foseg: return le_string(x87_init ? 0 : get_le(b, kFds, 2), 4);
    case Kind::Fooff: return le_string(x87_init ? 0 : get_le(b, kFdp, 4), 4);
    case Kind::Fop: return le_string(x87_init ? 0 : get_le(b, kFop, 2) & 0x7ff, 4);
    case Kind::Xmm:
      if (x.init(kSse)) return std::string(16, '\0');
      return bytes(b, kXmm + 16 * static_cast<size_t>(s.index), 16);
    case Kind::Mxcsr:
      return le_string(x.init(kSse | kAvx) ? kMxcsrInit : get_le(b, kMxcsr, 4), 4);
    case Kind::YmmH:
      if (!x.avx_usable() || x.init(kAvx)) return std::string(16, '\0');
      return bytes(b, avx_offset() + 16 * static_cast<size_t>(s.index), 16);
  }
  return std::string(size, '\0');
}

Status ThreadRegisters::write(int regno, const std::string& value) {
  if (regno < 0 || regno >= register_count()) return make_error(22, "no such register");
  const Slot& s = table().slots[regno];
  const size_t size = static_cast<size_t>(table().info[regno].bitsize / 8);
  if (value.size() != size) return make_error(22, "register value has the wrong size");
  auto cur = read(regno);
  if (cur && *cur == value) return ok_status();  // unchanged: nothing to store

  const XView x{xsave_, have_xsave_};
  auto& b = xsave_;
  const uint64_t v = get_le(value);
  auto copy_in = [&value](std::vector<uint8_t>& dst, size_t off) {
    std::memcpy(dst.data() + off, value.data(), value.size());
  };
  switch (s.kind) {
    case Kind::Gpr64: copy_in(gpr_, static_cast<size_t>(s.index)); gpr_dirty_ = true; return ok_status();
    case Kind::Gpr32:
      // eflags and the selectors are 64-bit in user_regs_struct; their upper
      // halves are zero, so zero-extend.
      put_le(gpr_, static_cast<size_t>(s.index), 8, v & 0xffffffffu);
      gpr_dirty_ = true;
      return ok_status();
    case Kind::YmmH:
      if (!x.avx_usable()) return make_error(5, "this thread has no AVX state");
      materialize(b, have_xsave_, kAvx);
      copy_in(b, avx_offset() + 16 * static_cast<size_t>(s.index));
      break;
    case Kind::Xmm:
      materialize(b, have_xsave_, kSse);
      copy_in(b, kXmm + 16 * static_cast<size_t>(s.index));
      break;
    case Kind::Mxcsr:
      if (x.init(kSse | kAvx)) materialize(b, have_xsave_, kSse);
      put_le(b, kMxcsr, 4, v & 0xffffffffu);
      break;
    default:  // x87 registers
      materialize(b, have_xsave_, kX87);
      switch (s.kind) {
        case Kind::St: copy_in(b, kSt + 16 * static_cast<size_t>(s.index)); break;
        case Kind::Fctrl: put_le(b, kFcw, 2, v); break;
        case Kind::Fstat: put_le(b, kFsw, 2, v); break;
        case Kind::Ftag: b[kFtw] = abridged_tag(v); break;
        case Kind::Fiseg: put_le(b, kFcs, 2, v); break;
        case Kind::Fioff: put_le(b, kFip, 4, v); break;
        case Kind::Foseg: put_le(b, kFds, 2, v); break;
        case Kind::Fooff: put_le(b, kFdp, 4, v); break;
        case Kind::Fop:  // 11 bits; keep the rest as the CPU left it
          put_le(b, kFop, 2, (v & 0x7ff) | (get_le(b, kFop, 2) & 0xf800));
          break;
        default: break;
      }
      break;
  }
  fp_dirty_ = true;
  return ok_status();
}

std::string ThreadRegisters::read_all() const {
  std::string out;
  out.reserve(static_cast<size_t>(table().total));
  for (int i = 0; i < register_count(); ++i) out += read(i).value();
  return out;
}

Status ThreadRegisters::write_all(const std::string& data) {
  const Table& t = table();
  if (data.size() > static_cast<size_t>(t.total)) return make_error(22, "register data too long");
  // Work on a copy so that a failure leaves the registers as they were.
  ThreadRegisters copy = *this;
  for (size_t i = 0; i < t.info.size(); ++i) {
    const size_t off = static_cast<size_t>(t.info[i].offset);
    const size_t size = static_cast<size_t>(t.info[i].bitsize / 8);
    if (off >= data.size()) break;
    if (off + size > data.size()) return make_error(22, "register data ends inside a register");
    auto st = copy.write(static_cast<int>(i), data.substr(off, size));
    if (!st) return st;
  }
  *this = std::move(copy);
  return ok_status();
}

Status ThreadRegisters::store(pid_t tid) {
  if (gpr_dirty_) {
    if (ptrace(PTRACE_SETREGS, tid, nullptr, gpr_.data()) != 0) return errno_error("PTRACE_SETREGS");
    gpr_dirty_ = false;
    // The kernel sanitizes some fields (eflags bits, selectors): keep the
    // cache equal to what the thread really has.
    if (ptrace(PTRACE_GETREGS, tid, nullptr, gpr_.data()) != 0) return errno_error("PTRACE_GETREGS");
  }
  if (fp_dirty_) {
    if (have_xsave_) {
      // The full size the kernel gave us, never less (see fetch()).
      iovec iov{xsave_.data(), xsave_.size()};
      void* type = reinterpret_cast<void*>(uintptr_t{NT_X86_XSTATE});
      if (ptrace(PTRACE_SETREGSET, tid, type, &iov) != 0) return errno_error("PTRACE_SETREGSET");
      fp_dirty_ = false;
      // Re-read so the cache holds what the kernel accepted.
      iov = {xsave_.data(), xsave_.size()};
      if (ptrace(PTRACE_GETREGSET, tid, type, &iov) != 0) return errno_error("PTRACE_GETREGSET");
    } else {
      if (ptrace(PTRACE_SETFPREGS, tid, nullptr, xsave_.data()) != 0)
        return errno_error("PTRACE_SETFPREGS");
    }
    fp_dirty_ = false;
  }
  return ok_status();
}

uint64_t ThreadRegisters::pc() const {
  return get_le(gpr_, offsetof(user_regs_struct, rip), 8);
}

void ThreadRegisters::assume_pc(uint64_t pc) { put_le(gpr_, offsetof(user_regs_struct, rip), 8, pc); }

void ThreadRegisters::set_pc(uint64_t pc) {
  if (this->pc() == pc) return;
  put_le(gpr_, offsetof(user_regs_struct, rip), 8, pc);
  gpr_dirty_ = true;
}

}  // namespace dbgstub::x86

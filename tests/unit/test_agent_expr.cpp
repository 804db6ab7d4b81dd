// Agent expression interpreter (protocol/agent): GDB's condition and
// dprintf bytecode, and hostile bytecode that must fail cleanly.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>

#include "protocol/agent/agent_expr.h"
#include "protocol/rsp/hex.h"

using namespace dbgstub;
using namespace dbgstub::agent;

namespace {

struct FakeContext : Context {
  std::map<int, uint64_t> regs;
  std::map<uint64_t, uint8_t> mem;
  std::string printed;
  std::optional<uint64_t> reg(int regno) override {
    auto it = regs.find(regno);
    if (it == regs.end()) return std::nullopt;
    return it->second;
  }
  bool read_memory(uint64_t addr, void* out, std::size_t len) override {
    for (std::size_t i = 0; i < len; ++i) {
      auto it = mem.find(addr + i);
      if (it == mem.end()) return false;
      static_cast<uint8_t*>(out)[i] = it->second;
    }
    return true;
  }
  void print(std::string_view text) override { printed += text; }
  void put(uint64_t addr, const std::string& bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i) mem[addr + i] = static_cast<uint8_t>(bytes[i]);
  }
};

std::string hex(std::string_view h) { return *rsp::from_hex(h); }

Result run(std::string_view hexcode, FakeContext& ctx, bool need_value = true, const Limits& l = {}) {
  return evaluate(hex(hexcode), ctx, need_value, l);
}

}  // namespace

TEST_CASE("agent: gdb's condition x == 3 (reg, const, add, ref32, ext, equal)") {
  // From gdb 13 for `break f if x == 3` (x at rbp+0x10-0x14):
  // reg 6; const8 0x14; ... as sent in "Z0,...;X12,26000622100222ec16080219162022031327"
  FakeContext ctx;
  ctx.regs[6] = 0x1000;  // rbp
  std::string code = hex("26000622100222ec16080219162022031327");
  for (int x : {0, 3, 4, -3}) {
    uint32_t v = static_cast<uint32_t>(x);
    ctx.put(0x1000 - 4, std::string(reinterpret_cast<const char*>(&v), 4));
    auto r = evaluate(code, ctx);
    REQUIRE(r.ok());
    CHECK(r.value == (x == 3 ? 1u : 0u));
  }
}

TEST_CASE("agent: arithmetic, comparisons and stack ops") {
  FakeContext ctx;
  CHECK(run("2205220302" "27", ctx).value == 8);            // 5 + 3
  CHECK(run("2205220303" "27", ctx).value == 2);            // 5 - 3
  CHECK(run("2203220503" "27", ctx).value == uint64_t(-2));  // 3 - 5
  CHECK(run("2206220704" "27", ctx).value == 42);
  CHECK(run("22f91608" "220205" "27", ctx).value == uint64_t(-3));  // -7 / 2 (signed)
  CHECK(run("22f91608" "220207" "27", ctx).value == uint64_t(-1));  // -7 % 2
  CHECK(run("2207220206" "27", ctx).value == 3);
  CHECK(run("2207220208" "27", ctx).value == 1);
  CHECK(run("2201220409" "27", ctx).value == 16);           // 1 << 4
  CHECK(run("2201224009" "27", ctx).value == 0);            // shift >= 64: 0, not UB
  CHECK(run("22ff1608" "22010a" "27", ctx).value == uint64_t(-1));  // -1 >> 1 signed
  CHECK(run("22ff1608" "22400a" "27", ctx).value == uint64_t(-1));  // signed shift >= 64
  CHECK(run("22f022010b" "27", ctx).value == 0x78);
  CHECK(run("22000e" "27", ctx).value == 1);                // log_not
  CHECK(run("22050e" "27", ctx).value == 0);
  CHECK(run("220c220a0f" "27", ctx).value == 8);
  CHECK(run("220c220a10" "27", ctx).value == 14);
  CHECK(run("220c220a11" "27", ctx).value == 6);
  CHECK(run("220012" "27", ctx).value == ~uint64_t{0});
  CHECK(run("22ff1608" "220114" "27", ctx).value == 1);     // -1 < 1 signed
  CHECK(run("22ff1608" "220115" "27", ctx).value == 0);     // not unsigned
  CHECK(run("22ff2a04" "27", ctx).value == 0xf);            // zero_ext 4
  CHECK(run("23fffe" "1610" "27", ctx).value == uint64_t(-2));  // ext 16
  CHECK(run("2401020304" "27", ctx).value == 0x01020304);
  CHECK(run("250102030405060708" "27", ctx).value == 0x0102030405060708);
  CHECK(run("2205" "28" "02" "27", ctx).value == 10);       // dup
  CHECK(run("22052206" "29" "27", ctx).value == 5);         // pop
  CHECK(run("22012202" "2b" "03" "27", ctx).value == 1);    // swap: 2 - 1
  CHECK(run("220122022203" "3201" "27", ctx).value == 2);   // pick 1
  // rot: a b c => c a b: 1 2 3 -> 3 1 2; top 2, then 1, then 3.
  CHECK(run("220122022203" "33" "27", ctx).value == 2);
  CHECK(run("220122022203" "33" "29" "27", ctx).value == 1);
  CHECK(run("220122022203" "33" "2929" "27", ctx).value == 3);
}

TEST_CASE("agent: gotos") {
  FakeContext ctx;
  // const8 1; if_goto 8; const8 5; end; (8:) const8 9; end
  CHECK(run("2201" "200008" "2205" "27" "2209" "27", ctx).value == 9);
  CHECK(run("2200" "200008" "2205" "27" "2209" "27", ctx).value == 5);
  CHECK(run("210005" "2201" "2202" "27", ctx).value == 2);  // goto skips const8 1
}

TEST_CASE("agent: memory reads, registers") {
  FakeContext ctx;
  ctx.put(0x2000, hex("efbeadde78563412"));
  ctx.regs[0] = 0x2000;
  CHECK(run("26000017" "27", ctx).value == 0xef);
  CHECK(run("26000018" "27", ctx).value == 0xbeef);
  CHECK(run("26000019" "27", ctx).value == 0xdeadbeef);
  CHECK(run("2600001a" "27", ctx).value == 0x12345678deadbeef);
  CHECK(run("2400003000" "19" "27", ctx).status == Status::MemoryError);
  CHECK(run("260063" "27", ctx).status == Status::BadRegister);
}

TEST_CASE("agent: printf as gdb's dprintf agent sends it") {
  // dprintf f,"dp x=%d label=%s\n",x,label
  FakeContext ctx;
  ctx.regs[6] = 0x1000;
  int32_t x = -7;
  ctx.put(0x1000 - 4, std::string(reinterpret_cast<const char*>(&x), 4));
  ctx.put(0x3000, std::string("\x00\x40\x00\x00\x00\x00\x00\x00", 8));  // label -> 0x4000
  ctx.put(0x4000, std::string("item\0", 5));
  // const64 0x3000; ref64; reg 6; const8 0x14; ... x; const8 0 (chan); const8 0 (fn); printf 2 "..."; end
  std::string fmt = "dp x=%d label=%s\\n";
  std::string c = hex("250000000000003000" "1a" "26000622100222ec16080219" "162022002200");
  c += '\x34';
  c += '\x02';
  c += '\x00';
  c += static_cast<char>(fmt.size() + 1);
  c += fmt;
  c += '\0';
  c += '\x27';
  auto r = evaluate(c, ctx, false);
  REQUIRE(r.ok());
  CHECK(ctx.printed == "dp x=-7 label=item\n");
}

TEST_CASE("agent: printf formats") {
  FakeContext ctx;
  ctx.put(0x10, std::string("hello\0", 6));
  uint64_t a[] = {uint64_t(-1), 255, 'A', 0x10, 0, 0x7fff};
  auto f = [&](std::string_view fmt, std::size_t n) { return format_printf(fmt, a, n, ctx); };
  CHECK(*f("%d", 1) == "-1");
  CHECK(*f("%u", 1) == "4294967295");
  CHECK(*f("%lu", 1) == "18446744073709551615");
  CHECK(*f("%lld %x", 2) == "-1 ff");
  CHECK(*f("%hhd", 1) == "-1");
  CHECK_FALSE(f("%5.3s|%-4s|", 5));  // five arguments for two conversions
  uint64_t s[] = {0x10, 0x10};
  CHECK(*format_printf("%5.3s|%-7s|", s, 2, ctx) == "  hel|hello  |");
  uint64_t z[] = {0};
  CHECK(*format_printf("%s", z, 1, ctx) == "(null)");
  CHECK(*format_printf("%p", z, 1, ctx) == "(nil)");
  CHECK(*format_printf("100%% \\t\\\"q\\\"", z, 0, ctx) == "100% \t\"q\"");
  CHECK(*format_printf("%c%08x", a + 2, 2, ctx) == "A00000010");
  // refused: floats, %n, '*', too wide, bad escape, wrong argument count, unreadable string
  CHECK_FALSE(format_printf("%f", a, 1, ctx));
  CHECK_FALSE(format_printf("%n", a, 1, ctx));
  CHECK_FALSE(format_printf("%*d", a, 2, ctx));
  CHECK_FALSE(format_printf("%99999d", a, 1, ctx));
  CHECK_FALSE(format_printf("\\q", a, 0, ctx));
  CHECK_FALSE(format_printf("%d %d", a, 1, ctx));
  CHECK_FALSE(format_printf("%d", a, 2, ctx));
  CHECK_FALSE(format_printf("%", a, 1, ctx));
  uint64_t bad[] = {0x999};
  CHECK_FALSE(format_printf("%s", bad, 1, ctx));
}

TEST_CASE("agent: hostile bytecode fails cleanly") {
  FakeContext ctx;
  CHECK(evaluate("", ctx).status == Status::EmptyExpression);
  CHECK(run("27", ctx).status == Status::EmptyStack);
  CHECK(run("27", ctx, false).ok());                       // commands may end empty
  CHECK(run("02" "27", ctx).status == Status::StackUnderflow);
  CHECK(run("2201" "02" "27", ctx).status == Status::StackUnderflow);
  CHECK(run("29", ctx).status == Status::StackUnderflow);
  CHECK(run("2b", ctx).status == Status::StackUnderflow);
  CHECK(run("22012202" "33", ctx).status == Status::StackUnderflow);
  CHECK(run("2201" "3205", ctx).status == Status::StackUnderflow);  // pick beyond the stack
  CHECK(run("22", ctx).status == Status::Truncated);               // const8 without its byte
  CHECK(run("25010203", ctx).status == Status::Truncated);
  CHECK(run("2201", ctx).status == Status::Truncated);             // no end
  CHECK(run("21ffff", ctx).status == Status::BadJump);
  CHECK(run("2201" "200100", ctx).status == Status::BadJump);
  CHECK(run("210000", ctx).status == Status::TooManySteps);        // goto self
  CHECK(run("2201" "2000", ctx).status == Status::Truncated);
  CHECK(run("2201220005" "27", ctx).status == Status::DivideByZero);
  CHECK(run("2201220008" "27", ctx).status == Status::DivideByZero);
  CHECK(run("ff", ctx).status == Status::UnknownOpcode);
  CHECK(run("00", ctx).status == Status::UnknownOpcode);
  CHECK(run("2201" "1b" "27", ctx).status == Status::Unsupported);  // ref_float
  CHECK(run("2c0001" "27", ctx).status == Status::Unsupported);     // getv
  CHECK(run("2201" "1600", ctx).status == Status::BadFormat);       // ext 0
  // Signed overflow cases are defined: INT64_MIN / -1, INT64_MIN % -1.
  CHECK(run("258000000000000000" "22ff1608" "05" "27", ctx).value == 0x8000000000000000);
  CHECK(run("258000000000000000" "22ff1608" "07" "27", ctx).value == 0);
  // Stack overflow: dup forever.
  CHECK(run("2201" "28" "210002", ctx).status == Status::StackOverflow);
  // printf: missing format bytes, unterminated format, too few stack values.
  CHECK(run("3401", ctx).status == Status::Truncated);
  CHECK(run("2200220034000010" "6162", ctx).status == Status::Truncated);
  CHECK(run("22002200340000026162" "27", ctx).status == Status::BadFormat);
  CHECK(run("2200" "3400000100" "27", ctx).status == Status::StackUnderflow);
  CHECK(run("220022003400000000" "27", ctx).status == Status::BadFormat);
  // A bounded step count keeps a long but legal loop from hanging.
  Limits small;
  small.max_steps = 50;
  CHECK(run("22ff" "2201" "03" "28" "200002" "27", ctx, true, small).status == Status::TooManySteps);
  // Random bytes never crash, and always stop.
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string code(1 + rng() % 40, '\0');
    for (auto& c : code) c = static_cast<char>(rng() % 0x36);
    (void)evaluate(code, ctx, rng() % 2);
  }
}

TEST_CASE("agent: parse_expression") {
  std::string_view s = "X3,220127X1,27;rest";
  auto a = parse_expression(s);
  REQUIRE(a);
  CHECK(*a == hex("220127"));
  auto b = parse_expression(s);
  REQUIRE(b);
  CHECK(*b == hex("27"));
  CHECK(s == ";rest");
  for (std::string_view bad : {"", "X", "X,", "X0,", "X3,2201", "X3,22012", "Xg,22", "3,220127", "X2,zz00",
                               "Xffffffffffffffff,00", "X10000000000000000,00"}) {
    std::string_view t = bad;
    CHECK_FALSE(parse_expression(t));
  }
}

// A loop of printfs (gdb never sends one, a hostile client may): each %s
// reads its string a byte at a time, and each printf may print up to
// max_output, so without limits per evaluation one breakpoint hit could read
// and print for minutes. (Found by review of the fuzz target.)
TEST_CASE("agent: a loop of printfs stops at the evaluation's output and read limits") {
  FakeContext ctx;
  ctx.put(0x4000, std::string(4095, 'a') + '\0');
  std::string fmt = "%s";
  // 0: const16 0x4000; 3: const8 0 (chan); 5: const8 0 (fn); 7: printf 1 "%s"; goto 0
  std::string c = hex("234000" "2200" "2200");
  c += '\x34';
  c += '\x01';
  c += '\x00';
  c += static_cast<char>(fmt.size() + 1);
  c += fmt;
  c += '\0';
  c += hex("210000");
  auto r = evaluate(c, ctx, false);
  CHECK(r.status == Status::TooMuchOutput);
  CHECK(ctx.printed.size() <= Limits{}.max_output);
  // Reads alone (a format that prints little): bounded too.
  ctx.printed.clear();
  std::string fmt2 = "%.1s";
  std::string c2 = hex("234000" "2200" "2200");
  c2 += '\x34';
  c2 += '\x01';
  c2 += '\x00';
  c2 += static_cast<char>(fmt2.size() + 1);
  c2 += fmt2;
  c2 += '\0';
  c2 += hex("210000");
  CHECK(evaluate(c2, ctx, false).status == Status::TooMuchOutput);
  CHECK(ctx.printed.size() <= Limits{}.max_string_reads / 4095 + 1);
}

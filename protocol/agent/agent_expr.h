// GDB agent expressions (GDB manual, "Agent Expressions"): the bytecode GDB
// sends with Z packets for target-side breakpoint conditions and commands
// (dprintf with `set dprintf-style agent`).
//
// Pure code: decoding and a bounded interpreter. Registers, memory and
// printf output go through Context, which the server implements over a
// target. The bytecode is untrusted: every stack access, jump, register
// number, memory read and format string is checked, and the number of
// instructions run is bounded so that a loop can't hang the stub.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dbgstub::agent {

// Opcodes (gdbsupport/ax.def).
enum Op : uint8_t {
  kFloat = 0x01, kAdd = 0x02, kSub = 0x03, kMul = 0x04, kDivSigned = 0x05, kDivUnsigned = 0x06,
  kRemSigned = 0x07, kRemUnsigned = 0x08, kLsh = 0x09, kRshSigned = 0x0a, kRshUnsigned = 0x0b,
  kTrace = 0x0c, kTraceQuick = 0x0d, kLogNot = 0x0e, kBitAnd = 0x0f, kBitOr = 0x10, kBitXor = 0x11,
  kBitNot = 0x12, kEqual = 0x13, kLessSigned = 0x14, kLessUnsigned = 0x15, kExt = 0x16,
  kRef8 = 0x17, kRef16 = 0x18, kRef32 = 0x19, kRef64 = 0x1a, kRefFloat = 0x1b, kRefDouble = 0x1c,
  kRefLongDouble = 0x1d, kLToD = 0x1e, kDToL = 0x1f, kIfGoto = 0x20, kGoto = 0x21,
  kConst8 = 0x22, kConst16 = 0x23, kConst32 = 0x24, kConst64 = 0x25, kReg = 0x26, kEnd = 0x27,
  kDup = 0x28, kPop = 0x29, kZeroExt = 0x2a, kSwap = 0x2b, kGetv = 0x2c, kSetv = 0x2d,
  kTracev = 0x2e, kTracenz = 0x2f, kTrace16 = 0x30, kInvalid2 = 0x31, kPick = 0x32, kRot = 0x33,
  kPrintf = 0x34,
};

// What the interpreter may touch. Values are little-endian target data.
class Context {
 public:
  virtual ~Context() = default;
  // Register `regno` (GDB's numbering for the target description),
  // zero-extended; nullopt if there is no such register or it can't be read.
  virtual std::optional<uint64_t> reg(int regno) = 0;
  // Exactly `len` bytes at `addr` into `out`; false on any failure.
  virtual bool read_memory(uint64_t addr, void* out, std::size_t len) = 0;
  // Text produced by the printf opcode.
  virtual void print(std::string_view text) = 0;
};

struct Limits {
  std::size_t max_stack = 100;      // gdbserver's STACK_MAX
  uint64_t max_steps = 100000;      // instructions per evaluation
  std::size_t max_string = 4096;    // bytes of a %s argument read from memory
  std::size_t max_output = 65536;   // bytes one printf, and all printfs of one evaluation, may produce
  // Bytes all %s arguments of one evaluation may read: with max_output and
  // max_steps, a loop of printfs ends quickly (each %s byte is one read).
  std::size_t max_string_reads = 65536;
};

enum class Status {
  Ok,
  EmptyExpression,
  EmptyStack,       // `end` with nothing to return
  StackOverflow,
  StackUnderflow,
  BadJump,
  Truncated,        // ran off the end, or an operand is cut short
  UnknownOpcode,
  Unsupported,      // floating point, trace state variables, ...
  DivideByZero,
  BadRegister,
  MemoryError,
  TooManySteps,
  BadFormat,        // printf: bad format string or argument count
  TooMuchOutput,    // printf: the evaluation's output or %s reads over their limits
};
const char* status_name(Status s);

struct Result {
  Status status = Status::Ok;
  uint64_t value = 0;   // top of stack at `end` (when needed)
  bool ok() const { return status == Status::Ok; }
};

// Runs `code`. With need_value, `end` must find a value on the stack (a
// condition); without, an empty stack at `end` is fine (a command).
Result evaluate(std::string_view code, Context& ctx, bool need_value = true, const Limits& limits = {});

// Decodes one "Xlen,hexbytes" expression at the front of `s` (as in Z
// packets' ";X3,220027" and "cmds:0,X..."), advancing `s` past it.
// nullopt if malformed: no X, bad or zero length, too few or bad hex digits.
std::optional<std::string> parse_expression(std::string_view& s);

// Formats printf's `format` (backslash escapes as GDB's printf takes them,
// which GDB leaves to the agent) with 64-bit arguments as the agent's printf
// does (int, long, long long, char and string conversions; no floating
// point, no %n, no '*'). %s arguments are addresses read through `ctx`.
// nullopt if the format is bad or the argument count doesn't match, or if
// %s would read more than `*read_budget` bytes (decremented by what is read).
std::optional<std::string> format_printf(std::string_view format, const uint64_t* args, std::size_t nargs,
                                         Context& ctx, const Limits& limits = {},
                                         std::size_t* read_budget = nullptr);

}  // namespace dbgstub::agent

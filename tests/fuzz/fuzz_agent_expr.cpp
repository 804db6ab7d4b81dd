// libFuzzer target: the agent-expression decoder and interpreter
// (protocol/agent) with a bounded fake thread: registers 0..39 and 4 KiB of
// memory at 0x1000, everything else unreadable.
//
// Two input forms:
//  - an input starting with 'Z' or 'z' is a breakpoint packet payload as
//    gdb sends it ("Z0,addr,kind;X3,220027;cmds:0,X..."): it goes through
//    rsp::parse_request (which decodes the expressions with
//    agent::parse_expression) and each condition and command is run, as
//    server/gdb/breakpoint_agent.cpp does at a hit;
//  - otherwise byte 0 picks the mode (bit 0: a condition, which must leave
//    a value; bit 1: small limits) and the rest is raw bytecode.
// Also, any input is offered to agent::parse_expression directly.
//
// Checked: evaluation terminates within the step limit (libFuzzer's
// timeout catches a hang), printf output stays within max_output, memory
// reads stay within what was asked, and evaluating twice gives the same
// result and output (no hidden state).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <variant>

#include "protocol/agent/agent_expr.h"
#include "protocol/rsp/request.h"

namespace agent = dbgstub::agent;
namespace rsp = dbgstub::rsp;

namespace {

[[noreturn]] void fail() { __builtin_trap(); }

constexpr uint64_t kMemBase = 0x1000;
constexpr std::size_t kMemSize = 0x1000;
constexpr int kRegisters = 40;

class FakeThread : public agent::Context {
 public:
  explicit FakeThread(const agent::Limits& limits) : limits_(limits) {
    // Some text (for %s), some zeros, some pattern.
    const char text[] = "hello from the fake thread\0second string\0";
    for (std::size_t i = 0; i < kMemSize; ++i) mem_[i] = static_cast<char>((i * 37 + 11) & 0xff);
    std::memcpy(mem_, text, sizeof text);
    std::memset(mem_ + 0x100, 0, 0x40);
  }
  std::optional<uint64_t> reg(int regno) override {
    if (regno < 0 || regno >= kRegisters) return std::nullopt;
    if (regno == 7) return kMemBase + 0x800;  // rsp-ish: points into memory
    if (regno == 16) return kMemBase;          // rip-ish
    return static_cast<uint64_t>(regno) * 0x0101010101010101ull;
  }
  bool read_memory(uint64_t addr, void* out, std::size_t len) override {
    if (len > 8) fail();  // the interpreter reads at most 8 bytes at a time
    if (addr < kMemBase || addr - kMemBase > kMemSize || len > kMemSize - (addr - kMemBase)) return false;
    std::memcpy(out, mem_ + (addr - kMemBase), len);
    return true;
  }
  void print(std::string_view text) override {
    if (text.size() > limits_.max_output) fail();
    // A hash and a count, not the text: a loop may print a lot.
    for (char c : text) hash_ = (hash_ ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    printed_ += text.size();
  }
  bool same_output(const FakeThread& o) const { return hash_ == o.hash_ && printed_ == o.printed_; }

 private:
  agent::Limits limits_;
  char mem_[kMemSize];
  uint64_t hash_ = 0xcbf29ce484222325ull;
  uint64_t printed_ = 0;
};

void run(std::string_view code, bool need_value, const agent::Limits& limits) {
  FakeThread t1(limits), t2(limits);
  agent::Result a = agent::evaluate(code, t1, need_value, limits);
  agent::Result b = agent::evaluate(code, t2, need_value, limits);
  if (a.status != b.status || a.value != b.value || !t1.same_output(t2)) fail();
  if (agent::status_name(a.status)[0] == '?') fail();
  if (!a.ok() && a.value != 0) fail();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string_view s = in;
  while (auto e = agent::parse_expression(s)) {
    if (e->empty()) fail();  // zero lengths are refused
  }

  if (!in.empty() && (in[0] == 'Z' || in[0] == 'z')) {
    auto req = rsp::parse_request(in);
    if (!req) return 0;
    auto* bp = std::get_if<rsp::Breakpoint>(&*req);
    if (!bp) return 0;
    for (const auto& c : bp->conditions) run(c, true, agent::Limits{});
    for (const auto& c : bp->commands) run(c, false, agent::Limits{});
    return 0;
  }

  if (in.empty()) return 0;
  uint8_t mode = static_cast<uint8_t>(in[0]);
  agent::Limits limits;
  if (mode & 2) {
    limits.max_stack = 8;
    limits.max_steps = 500;
    limits.max_string = 16;
    limits.max_output = 64;
  }
  run(in.substr(1), mode & 1, limits);
  return 0;
}

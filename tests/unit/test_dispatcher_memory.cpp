// The GDB dispatcher against a small fake process target: binary memory
// reads in both dialects (lldb's bare 'x' and GDB 16's binary-upload 'b'
// replies), the PacketSize that sizes them, and range stepping (vCont;r)
// announced and passed on to the target with its range.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "protocol/rsp/hex.h"
#include "server/gdb/dispatcher.h"
#include "tests/unit/fake_process_target.h"

using namespace dbgstub;

namespace {

class FakeProcess : public testing::FakeProcessTarget {
 public:
  FakeProcess() { caps.range_step = true; }
  std::string memory = std::string("ab$#}*\x00\xff", 8);  // at 0x1000, with bytes framing escapes
  static constexpr uint64_t kBase = 0x1000;

  Result<std::string> read_memory(int, uint64_t addr, std::size_t len) override {
    if (addr < kBase || addr >= kBase + memory.size()) return make_error(14, "unmapped");
    return memory.substr(addr - kBase, len);
  }
};

struct Harness {
  FakeProcess target;
  std::vector<std::string> sent;
  Dispatcher dispatcher{target, DispatcherConfig{},
                        SessionHooks{[this](std::string p) { sent.push_back(std::move(p)); }, {}, {}, {}, {}, {}}};
  std::string request(const std::string& p) {
    sent.clear();
    dispatcher.handle_packet(p);
    REQUIRE(sent.size() == 1);
    return sent.back();
  }
};

}  // namespace

TEST_CASE("dispatcher: lldb's binary x reads are the bare bytes") {
  Harness h;
  std::string sup = h.request("qSupported:xmlRegisters=i386");
  CHECK(sup.find("PacketSize=20000") != std::string::npos);
  CHECK(sup.find("binary-upload") == std::string::npos);  // not asked for: not offered
  CHECK(h.request("x0,0") == "OK");                         // lldb's probe
  CHECK(h.request("x1000,8") == h.target.memory);           // unescaped here: framing escapes
  CHECK(h.request("x1002,3") == "$#}");
  CHECK(h.request("m1000,2") == "6162");
  CHECK(h.request("x2000,4")[0] == 'E');
}

TEST_CASE("dispatcher: GDB 16's binary-upload x reads start with 'b'") {
  Harness h;
  std::string sup = h.request("qSupported:multiprocess+;binary-upload+;swbreak+");
  CHECK(sup.find(";binary-upload+") != std::string::npos);
  CHECK(h.request("x1000,8") == "b" + h.target.memory);
  CHECK(h.request("x1006,2") == std::string("b\x00\xff", 3));
  CHECK(h.request("x1000,0") == "b");
  CHECK(h.request("m1000,2") == "6162");  // 'm' is unchanged
  CHECK(h.request("x2000,4")[0] == 'E');
}

TEST_CASE("dispatcher: binary reads are bounded by PacketSize") {
  Harness h;
  h.target.memory = std::string(0x30000, 'z');
  h.request("qSupported:binary-upload+");
  std::string r = h.request("x1000,30000");
  CHECK(r.size() == 1 + (0x20000 - 8));
  std::string m = h.request("m1000,30000");
  CHECK(m.size() == 2 * ((0x20000 - 8) / 2));
}

TEST_CASE("dispatcher: range stepping is announced and passed on with its range") {
  Harness h;
  CHECK(h.request("vCont?") == "vCont;c;C;s;S;t;r");
  h.sent.clear();
  h.dispatcher.handle_packet("vCont;r401000,401020:7;c");
  CHECK(h.sent.empty());  // the stop reply comes later
  REQUIRE(h.target.resumes.back().size() == 2);
  const ResumeAction& r = h.target.resumes.back()[0];
  CHECK(r.kind == ResumeAction::Kind::Step);
  CHECK(r.ranged());
  CHECK(r.range_start == 0x401000);
  CHECK(r.range_end == 0x401020);
  REQUIRE(r.thread);
  CHECK(r.thread->tid == 7);
  CHECK(h.target.resumes.back()[1].kind == ResumeAction::Kind::Continue);
  CHECK_FALSE(h.target.resumes.back()[1].ranged());

  Harness plain;
  plain.target.caps.range_step = false;
  CHECK(plain.request("vCont?") == "vCont;c;C;s;S;t");
}

namespace {

// Counts the calls that describe processes (for a process target, /proc
// reads of each one's exe and name), lists their pids without them, as
// ProcessTarget, and remembers whose memory was read.
class CountingProcess : public testing::FakeProcessTarget {
 public:
  mutable int described = 0;
  int read_pid = 0;
  std::vector<ProcessInfo> processes() const override {
    ++described;
    return FakeProcessTarget::processes();
  }
  std::vector<int> process_ids() const override {
    std::vector<int> out;
    for (auto& t : listed)
      if (t.pid == t.tid) out.push_back(t.pid);
    return out;
  }
  Result<std::string> read_memory(int pid, uint64_t, std::size_t len) override {
    read_pid = pid;
    return std::string(len, '\x5a');
  }
};

}  // namespace

TEST_CASE("dispatcher: a memory read with no thread selected finds its process without describing processes") {
  CountingProcess target;
  target.listed = {{7, 7}, {7, 8}, {9, 9}};
  std::vector<std::string> sent;
  Dispatcher d{target, DispatcherConfig{},
               SessionHooks{[&](std::string p) { sent.push_back(std::move(p)); }, {}, {}, {}, {}, {}}};
  d.handle_packet("m1000,2");  // lldb reads memory without an Hg first
  REQUIRE(sent.size() == 1);
  CHECK(sent.back() == "5a5a");
  CHECK(target.read_pid == 7);  // the first process, as before
  CHECK(target.described == 0);
  d.handle_packet("Hgp9.9");
  d.handle_packet("m1000,1");
  CHECK(target.read_pid == 9);
  CHECK(target.described == 0);
}

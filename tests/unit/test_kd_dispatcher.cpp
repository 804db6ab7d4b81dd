// The KD front end's dispatcher against a small fake kernel target and the
// real LocalKernelTarget. No WinDbg runs here: requests are the recorded
// WinDbg ones from tests/data/kd/windbg-session.tsv where they fit, or
// built the way WinDbg builds them; replies are checked against the layout
// of the recorded Windows replies (sizes, ApiNumber, ReturnStatus).
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include <spdlog/spdlog.h>

#include "protocol/kd/manipulate.h"
#include "protocol/kd/structs.h"
#include "server/kd/kd_dispatcher.h"
#include "targets/local_kernel/local_kernel_target.h"
#include "targets/process/x86_registers.h"
#include "tests/unit/fake_process_target.h"

using namespace dbgstub;
using namespace dbgstub::kd;

namespace {

// A stopped two-vCPU kernel with x86-64 registers and a little memory;
// resuming and interrupting as the user-mode fake (resumes, interrupts).
class FakeKernel : public testing::FakeProcessTarget {
 public:
  FakeKernel() : map(x86::target_xml()) {
    listed = {{1, 1}, {1, 2}};
    const auto& last = x86::registers().back();
    std::size_t size = static_cast<std::size_t>(last.offset + last.bitsize / 8);
    for (int i = 0; i < 2; ++i) g[i] = std::string(size, '\0');
    map.set(g[0], "rip", 0xffffffff81000010ull);
    map.set(g[0], "rax", 0x1122334455667788ull);
    map.set(g[0], "rsp", 0xffffc90000003f00ull);
    map.set(g[0], "eflags", 0x246);
    map.set(g[0], "cs", 0x10);
    map.set(g[0], "ss", 0x18);
    map.set(g[0], "mxcsr", 0x1f80);
    map.set_raw(g[0], "xmm3", std::string("0123456789abcdef"));
    map.set(g[1], "rip", 0xffffffff81000020ull);
    for (uint64_t a = 0xffffffff81000000ull; a < 0xffffffff81001000ull; ++a) mem[a] = static_cast<char>(a & 0xff);
  }
  Mode mode() const override { return Mode::Kernel; }
  std::string describe() const override { return "fake kernel"; }
  TargetCapabilities capabilities() const override { return {}; }
  std::vector<ProcessInfo> processes() const override { return {}; }
  bool has_processes() const override { return false; }
  bool thread_alive(ThreadRef) const override { return true; }
  std::string target_xml() const override {
    ++xml_calls;
    return x86::target_xml();
  }
  Result<std::string> read_registers(ThreadRef t) override { return g[t.tid - 1]; }
  Status write_registers(ThreadRef t, const std::string& data) override {
    g[t.tid - 1] = data;
    ++register_writes;
    return ok_status();
  }
  Result<std::string> read_register(ThreadRef, int) override { return make_error(95, "no"); }
  Status write_register(ThreadRef, int, const std::string&) override { return make_error(95, "no"); }
  Result<std::string> read_memory(int, uint64_t addr, std::size_t len) override {
    std::string out;
    for (std::size_t i = 0; i < len; ++i) {
      auto it = mem.find(addr + i);
      if (it == mem.end()) return make_error(5, "unmapped");
      out += it->second;
    }
    return out;
  }
  Status write_memory(int, uint64_t addr, const std::string& data) override {
    for (std::size_t i = 0; i < data.size(); ++i) mem[addr + i] = data[i];
    return ok_status();
  }
  Status insert_breakpoint(int, BreakpointType, uint64_t addr, uint64_t) override {
    breakpoints.insert(addr);
    return ok_status();
  }
  Status remove_breakpoint(int, BreakpointType, uint64_t addr, uint64_t) override {
    breakpoints.erase(addr);
    return ok_status();
  }
  Status kill_process(int, const KillOptions&) override { return make_error(1, "no"); }
  std::optional<uint64_t> kernel_base() override { return 0xffffffff81000000ull; }

  KdRegisterMap map;
  std::string g[2];
  std::map<uint64_t, char> mem;
  std::set<uint64_t> breakpoints;
  int register_writes = 0;
  mutable int xml_calls = 0;
};

struct Sent {
  uint16_t type;
  Bytes payload;
};

struct Harness {
  explicit Harness(Target& t) : d(t, KdHooks{[this](uint16_t type, Bytes p) { sent.push_back({type, std::move(p)}); }}) {}
  KdDispatcher d;
  std::vector<Sent> sent;
  // Sends a manipulate request; returns what went out for it.
  std::vector<Sent> request(const Bytes& payload) {
    sent.clear();
    d.handle_packet(DataPacket{kPacketTypeKdStateManipulate, kInitialPacketId, payload});
    return sent;
  }
};

Bytes make_request(uint32_t api, uint16_t processor = 0, const std::function<void(ManipulateState64&)>& fill = {},
                   const Bytes& data = {}) {
  ManipulateState64 h;
  h.api_number = api;
  h.processor = processor;
  h.return_status = kStatusPending;
  if (fill) fill(h);
  Bytes b = serialize_struct(h);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

ManipulateState64 reply_header(const Sent& s) {
  REQUIRE(s.type == kPacketTypeKdStateManipulate);
  return parse_manipulate_header(s.payload).value();
}

std::string debug_text(const Sent& s) {
  REQUIRE(s.type == kPacketTypeKdDebugIo);
  return parse_debug_io(s.payload).value().text();
}

// Recorded WinDbg requests (tests/data/kd/windbg-session.tsv) by API.
std::filesystem::path capture_path() {
  if (const char* env = std::getenv("DBGSTUB_KD_VECTORS"); env && *env) return env;
  return std::filesystem::path(DBGSTUB_SOURCE_DIR) / "tests" / "data" / "kd" / "windbg-session.tsv";
}

struct Recorded {
  Bytes request, reply;  // payloads
};

// The first recorded request of `api` and the target's reply to it.
std::optional<Recorded> recorded(uint32_t api) {
  std::ifstream in(capture_path());
  std::string line;
  std::optional<Bytes> req;
  while (std::getline(in, line)) {
    auto tab = line.find('\t');
    if (line.empty() || line[0] == '#' || tab == std::string::npos) continue;
    Bytes b;
    std::string hexs = line.substr(tab + 1);
    for (std::size_t i = 0; i + 1 < hexs.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoi(hexs.substr(i, 2), nullptr, 16)));
    if (b.size() < 16 + 4) continue;
    auto h = decode_header(b).value();
    if (h.type != kPacketTypeKdStateManipulate) continue;
    Bytes payload(b.begin() + 16, b.end());
    if (ByteReader(payload).u32(0) != api) continue;
    bool host = line.substr(0, tab) == "H->T";
    if (host && !req) req = payload;
    else if (!host && req) return Recorded{*req, payload};
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("kd registers: CONTEXT from and back to gdb's x86-64 layout, by name") {
  FakeKernel k;
  Context c = kd_context_from_registers(k.map, k.g[0]);
  CHECK(c.rax == 0x1122334455667788ull);
  CHECK(c.rip == 0xffffffff81000010ull);
  CHECK(c.rsp == 0xffffc90000003f00ull);
  CHECK(c.eflags == 0x246);
  CHECK(c.seg_cs == 0x10);
  CHECK(c.seg_ss == 0x18);
  CHECK(c.mx_csr == 0x1f80);
  CHECK((c.context_flags & kContextFull) == kContextFull);
  CHECK(c.flt_save.xmm_registers[3].low == 0x3736353433323130ull);
  // Back: changed values land in the right registers, the rest stay.
  c.rbx = 0xabcdef;
  c.rip += 1;
  c.flt_save.xmm_registers[3].high = 0;
  std::string g = k.g[0];
  kd_registers_from_context(k.map, c, g);
  CHECK(k.map.get(g, "rbx") == 0xabcdefu);
  CHECK(k.map.get(g, "rip") == 0xffffffff81000011ull);
  CHECK(k.map.get(g, "rax") == 0x1122334455667788ull);
  CHECK(k.map.get_raw(g, "xmm3") == std::string("01234567") + std::string(8, '\0'));
  // x86-64 Linux's target.xml has no control registers: zeros, named.
  std::vector<std::string> missing;
  auto s = kd_special_from_registers(k.map, g, &missing);
  CHECK(s.cr3 == 0);
  CHECK(missing == std::vector<std::string>{"cr0", "cr2", "cr3", "cr4"});
}

TEST_CASE("kd registers: get reads at most 8 bytes in place; short or unknown gives nothing") {
  KdRegisterMap map(x86::target_xml());
  auto xmm0 = map.find("xmm0");
  REQUIRE(xmm0);
  CHECK(xmm0->size == 16);
  std::string g(xmm0->offset + xmm0->size, '\0');
  for (std::size_t i = 0; i < 16; ++i) g[xmm0->offset + i] = static_cast<char>(0x10 + i);
  CHECK(map.get(g, "xmm0") == 0x1716151413121110ull);  // the low 8 of 16 bytes, little-endian
  CHECK(map.get_raw(g, std::string("xmm0")) == g.substr(xmm0->offset, 16));
  std::string_view name = "xmm0 and more";
  CHECK(map.get(g, name.substr(0, 4)) == map.get(g, "xmm0"));  // a view that is not NUL-terminated
  CHECK_FALSE(map.get(g.substr(0, xmm0->offset + 15), "xmm0"));  // one byte short
  CHECK_FALSE(map.get(g, "xmm"));
  CHECK_FALSE(map.has("no-such-register"));
  CHECK(map.set(g, "xmm0", 0x42));
  CHECK(map.get_raw(g, "xmm0") == std::string("\x42", 1) + std::string(15, '\0'));  // set writes the whole register
}

TEST_CASE("kd dispatcher: connect greets, then reports the stop as a breakpoint exception") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  REQUIRE(h.sent.size() == 2);
  CHECK(debug_text(h.sent[0]).find("fake kernel") != std::string::npos);
  REQUIRE(h.sent[1].type == kPacketTypeKdStateChange64);
  auto m = parse_state_change(h.sent[1].payload).value();
  CHECK(h.sent[1].payload.size() == WaitStateChange::kSize);  // as the recorded exception state change (240)
  CHECK(m.header.new_state == kDbgKdExceptionStateChange);
  CHECK(m.header.number_processors == 2);
  CHECK(m.header.processor == 0);
  CHECK(m.header.program_counter == 0xffffffff81000010ull);
  auto e = m.header.exception();
  CHECK(e.record.exception_code == kStatusBreakpoint);
  CHECK(e.record.exception_address == 0xffffffff81000010ull);
  CHECK(e.first_chance == 1);
  CHECK(m.header.control_report.instruction_count == 16);
  CHECK(m.header.control_report.instruction_stream[0] == 0x10);
  CHECK(m.header.control_report.seg_cs == 0x10);
  CHECK(m.header.control_report.eflags == 0x246);
}

TEST_CASE("kd dispatcher: GetVersion says 'not NT' honestly, with the recorded reply's layout") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  auto rec = recorded(kDbgKdGetVersionApi);
  REQUIRE(rec.has_value());
  auto out = h.request(rec->request);
  REQUIRE(out.size() == 1);
  CHECK(out[0].payload.size() == rec->reply.size());
  auto rh = reply_header(out[0]);
  CHECK(rh.api_number == kDbgKdGetVersionApi);
  CHECK(rh.return_status == kStatusSuccess);
  auto v = union_view<GetVersion64>(rh);
  CHECK(dbgkd_major_type(v.major_version) != kDbgKdMajorNt);
  CHECK(dbgkd_major_type(v.major_version) == kDbgKdMajorSingularity);
  CHECK((v.flags & kDbgKdVersFlagNoMm) != 0);
  CHECK((v.flags & kDbgKdVersFlagData) == 0);
  CHECK((v.flags & kDbgKdVersFlagMp) != 0);  // two vCPUs
  CHECK(v.machine_type == kImageFileMachineAmd64);
  CHECK(v.protocol_version == kDbgKd64BitProtocolVersion2);
  CHECK(v.kd_secondary_version == kKdSecondaryVersionAmd64Context);
  CHECK(v.kern_base == 0xffffffff81000000ull);
  CHECK(v.debugger_data_list == 0);
  CHECK(v.ps_loaded_module_list == 0);
}

TEST_CASE("kd dispatcher: memory reads, partial reads and writes") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  auto read = [&](uint64_t addr, uint32_t n) {
    return h.request(make_request(kDbgKdReadVirtualMemoryApi, 0, [&](ManipulateState64& m) {
      set_union(m, MemoryTransfer64{addr, n, 0});
    }));
  };
  auto out = read(0xffffffff81000100ull, 16);
  REQUIRE(out.size() == 1);
  auto rh = reply_header(out[0]);
  CHECK(rh.return_status == kStatusSuccess);
  CHECK(union_view<MemoryTransfer64>(rh).actual_bytes == 16);
  CHECK(out[0].payload.size() == ManipulateState64::kSize + 16);
  CHECK(out[0].payload[ManipulateState64::kSize] == 0x00);
  CHECK(out[0].payload[ManipulateState64::kSize + 5] == 0x05);
  // Across the end of the mapped page: what precedes it.
  out = read(0xffffffff81000ff0ull, 64);
  rh = reply_header(out[0]);
  CHECK(rh.return_status == kStatusSuccess);
  CHECK(union_view<MemoryTransfer64>(rh).actual_bytes == 16);
  // Unmapped: an error status and no data.
  out = read(0x1000, 8);
  rh = reply_header(out[0]);
  CHECK(rh.return_status == kStatusUnsuccessful);
  CHECK(out[0].payload.size() == ManipulateState64::kSize);
  // Write.
  out = h.request(make_request(kDbgKdWriteVirtualMemoryApi, 0, [&](ManipulateState64& m) {
    set_union(m, MemoryTransfer64{0xffffffff81000200ull, 2, 0});
  }, Bytes{0xCC, 0x90}));
  rh = reply_header(out[0]);
  CHECK(rh.return_status == kStatusSuccess);
  CHECK(union_view<MemoryTransfer64>(rh).actual_bytes == 2);
  CHECK(k.mem[0xffffffff81000200ull] == static_cast<char>(0xCC));
}

TEST_CASE("kd dispatcher: contexts and control space as the recorded replies lay them out") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  auto rec = recorded(kDbgKdGetContextApi);
  REQUIRE(rec.has_value());
  auto out = h.request(rec->request);
  REQUIRE(out.size() == 1);
  CHECK(out[0].payload.size() == rec->reply.size());  // 0x38 + 0x4D0
  auto rh = reply_header(out[0]);
  CHECK(rh.api_number == kDbgKdGetContextApi);
  CHECK(rh.return_status == kStatusSuccess);
  auto ctx = parse_context(ByteView(out[0].payload).subspan(ManipulateState64::kSize)).value();
  CHECK(ctx.rip == 0xffffffff81000010ull);

  // Processor 1 is the second vCPU.
  out = h.request(make_request(kDbgKdGetContextApi, 1));
  ctx = parse_context(ByteView(out[0].payload).subspan(ManipulateState64::kSize)).value();
  CHECK(ctx.rip == 0xffffffff81000020ull);

  // GetContextEx: a window.
  out = h.request(make_request(kDbgKdGetContextExApi, 0, [](ManipulateState64& m) {
    set_union(m, ContextEx{Context::kOffRip, 8, 0});
  }));
  rh = reply_header(out[0]);
  CHECK(rh.return_status == kStatusSuccess);
  CHECK(union_view<ContextEx>(rh).bytes_copied == 8);
  CHECK(ByteReader(out[0].payload).u64(ManipulateState64::kSize) == 0xffffffff81000010ull);

  // SetContext: the recorded request's layout, our values.
  ctx.rip = 0xffffffff81000030ull;
  auto set = make_request(kDbgKdSetContextApi, 1, [](ManipulateState64& m) { m.u[0] = 0; }, serialize_struct(ctx));
  out = h.request(set);
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  CHECK(out[0].payload.size() == ManipulateState64::kSize);
  CHECK(k.map.get(k.g[1], "rip") == 0xffffffff81000030ull);

  // SetContextEx: 8 bytes at Rax.
  Bytes rax(8, 0);
  rax[0] = 0x42;
  out = h.request(make_request(kDbgKdSetContextExApi, 0, [](ManipulateState64& m) {
    set_union(m, ContextEx{Context::kOffRax, 8, 0});
  }, rax));
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  CHECK(union_view<ContextEx>(reply_header(out[0])).bytes_copied == 8);
  CHECK(k.map.get(k.g[0], "rax") == 0x42u);

  // ReadControlSpace KSPECIAL: the recorded request, the recorded size;
  // the missing control registers are named once in a debug print.
  auto rcs = recorded(kDbgKdReadControlSpaceApi);
  REQUIRE(rcs.has_value());
  out = h.request(rcs->request);
  REQUIRE(out.size() == 2);
  CHECK(debug_text(out[0]).find("cr0, cr2, cr3, cr4") != std::string::npos);
  CHECK(out[1].payload.size() == rcs->reply.size());
  CHECK(reply_header(out[1]).return_status == kStatusSuccess);
  out = h.request(rcs->request);
  CHECK(out.size() == 1);  // said once
  // KPCR: an NT structure this guest lacks.
  out = h.request(make_request(kDbgKdReadControlSpaceApi, 0, [](ManipulateState64& m) {
    set_union(m, MemoryTransfer64{kAmd64DebugControlSpaceKpcr, 8, 0});
  }));
  CHECK(reply_header(out[0]).return_status == kStatusUnsuccessful);
}

TEST_CASE("kd dispatcher: a register map given at construction serves as the one it would build") {
  auto map = std::make_shared<const KdRegisterMap>(x86::target_xml());
  FakeKernel k1, k2;
  std::vector<Sent> s1, s2;
  KdDispatcher own(k1, KdHooks{[&](uint16_t t, Bytes p) { s1.push_back({t, std::move(p)}); }});
  KdDispatcher given(k2, KdHooks{[&](uint16_t t, Bytes p) { s2.push_back({t, std::move(p)}); }}, map);
  CHECK(k1.xml_calls == 1);
  CHECK(k2.xml_calls == 0);  // the description is not asked for, nor parsed
  own.start();
  given.start();
  Bytes rax(8, 0x42);
  std::vector<Bytes> requests = {
      make_request(kDbgKdGetContextApi, 0),
      make_request(kDbgKdGetContextApi, 1),
      make_request(kDbgKdGetContextExApi, 0, [](ManipulateState64& m) { set_union(m, ContextEx{Context::kOffRip, 8, 0}); }),
      make_request(kDbgKdSetContextExApi, 1, [](ManipulateState64& m) { set_union(m, ContextEx{Context::kOffRax, 8, 0}); },
                   rax),
      make_request(kDbgKdReadControlSpaceApi, 0,
                   [](ManipulateState64& m) { set_union(m, MemoryTransfer64{kAmd64DebugControlSpaceKspecial, 0xE0, 0}); }),
      make_request(kDbgKdGetVersionApi),
  };
  for (const auto& r : requests) {
    own.handle_packet(DataPacket{kPacketTypeKdStateManipulate, kInitialPacketId, r});
    given.handle_packet(DataPacket{kPacketTypeKdStateManipulate, kInitialPacketId, r});
  }
  REQUIRE(s1.size() == s2.size());
  CHECK(s1.size() > requests.size());  // the greeting and the stop came first
  for (std::size_t i = 0; i < s1.size(); ++i) {
    CHECK(s1[i].type == s2[i].type);
    CHECK(s1[i].payload == s2[i].payload);
  }
  CHECK(k1.g[1] == k2.g[1]);
  CHECK(map->get(k2.g[1], "rax") == 0x4242424242424242ull);
  // One map serves any number of dispatchers.
  std::vector<Sent> s3;
  KdDispatcher again(k2, KdHooks{[&](uint16_t t, Bytes p) { s3.push_back({t, std::move(p)}); }}, map);
  again.start();
  CHECK(!s3.empty());
  CHECK(k2.xml_calls == 0);
}

TEST_CASE("kd dispatcher: breakpoints, continue, step and the next stop") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  // The recorded RestoreBreakPoint of an unknown handle: unsuccessful, as Windows answered.
  auto rec = recorded(kDbgKdRestoreBreakPointApi);
  REQUIRE(rec.has_value());
  auto out = h.request(rec->request);
  CHECK(out[0].payload.size() == rec->reply.size());
  CHECK(reply_header(out[0]).return_status == ByteReader(rec->reply).u32(8));
  out = h.request(make_request(kDbgKdWriteBreakPointApi, 0, [](ManipulateState64& m) {
    set_union(m, WriteBreakPoint64{0xffffffff81000040ull, 0});
  }));
  auto rh = reply_header(out[0]);
  CHECK(rh.return_status == kStatusSuccess);
  uint32_t handle = union_view<WriteBreakPoint64>(rh).break_point_handle;
  CHECK(handle != 0);
  CHECK(k.breakpoints.count(0xffffffff81000040ull) == 1);
  out = h.request(make_request(kDbgKdRestoreBreakPointApi, 0, [&](ManipulateState64& m) {
    m.u[0] = static_cast<uint8_t>(handle);
  }));
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  CHECK(k.breakpoints.empty());

  // ClearAllInternalBreakpoints: no reply, as NT.
  CHECK(h.request(make_request(kDbgKdClearAllInternalBreakpointsApi)).empty());

  // Continue2 with TraceFlag: a single step of the current vCPU; no reply.
  out = h.request(make_request(kDbgKdContinueApi2, 0, [](ManipulateState64& m) {
    set_union(m, Continue2Body{kDbgContinue, 1, 0x400, 0, 0});
  }));
  CHECK(out.empty());
  REQUIRE(k.resumes.size() == 1);
  CHECK(k.resumes[0][0].kind == ResumeAction::Kind::Step);
  CHECK(h.d.running());
  // A request while running is answered, not dropped.
  out = h.request(make_request(kDbgKdGetVersionApi));
  CHECK(reply_header(out[0]).return_status == kStatusUnsuccessful);
  // The stop: a single-step state change on that vCPU.
  h.sent.clear();
  k.is_running = false;
  StopEvent ev;
  ev.thread = {1, 2};
  ev.signal = SIGTRAP;
  ev.reason = StopEvent::Reason::Step;
  h.d.handle_stop(ev);
  REQUIRE(h.sent.size() == 1);
  auto m = parse_state_change(h.sent[0].payload).value();
  CHECK(m.header.exception().record.exception_code == kStatusSingleStep);
  CHECK(m.header.processor == 1);
  CHECK(m.header.program_counter == 0xffffffff81000020ull);

  // The recorded Continue2 (no trace flag): everything continues.
  auto c2 = recorded(kDbgKdContinueApi2);
  (void)c2;  // Continue2 has no reply in the capture: build it the same way.
  h.request(make_request(kDbgKdContinueApi2, 1, [](ManipulateState64& m) {
    set_union(m, Continue2Body{kDbgContinue, 0, 0x400, 0, 0});
  }));
  REQUIRE(k.resumes.size() == 2);
  CHECK(k.resumes[1][0].kind == ResumeAction::Kind::Continue);
  CHECK_FALSE(k.resumes[1][0].thread.has_value());
  // Break-in while running interrupts the target.
  h.d.on_break_in();
  CHECK(k.interrupts == 1);
}

TEST_CASE("kd dispatcher: Dr0-Dr3 from control space, Dr7 of Continue2 -> hardware breakpoints") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  KSpecialRegisters s;
  s.kernel_dr0 = 0xffffffff81000100ull;
  s.kernel_dr1 = 0xffffffff81000200ull;
  auto out = h.request(make_request(kDbgKdWriteControlSpaceApi, 0, [](ManipulateState64& m) {
    set_union(m, MemoryTransfer64{kAmd64DebugControlSpaceKspecial, KSpecialRegisters::kSize, 0});
  }, serialize_struct(s)));
  CHECK(reply_header(out.back()).return_status == kStatusSuccess);
  // L0 execute; L1 write, 4 bytes.
  uint64_t dr7 = 0x1 | 0x4 | (1ull << 20) | (3ull << 22);
  auto cont = [&](uint64_t d7) {
    h.request(make_request(kDbgKdContinueApi2, 0, [&](ManipulateState64& m) {
      set_union(m, Continue2Body{kDbgContinue, 0, d7, 0, 0});
    }));
    k.is_running = false;
    StopEvent ev;
    ev.thread = {1, 1};
    ev.signal = SIGTRAP;
    h.d.handle_stop(ev);
  };
  cont(dr7);
  CHECK(k.breakpoints == std::set<uint64_t>{0xffffffff81000100ull, 0xffffffff81000200ull});
  // Read back through control space and the context.
  out = h.request(make_request(kDbgKdReadControlSpaceApi, 0, [](ManipulateState64& m) {
    set_union(m, MemoryTransfer64{kAmd64DebugControlSpaceKspecial, KSpecialRegisters::kSize, 0});
  }));
  auto back = parse_special_registers(ByteView(out.back().payload).subspan(ManipulateState64::kSize)).value();
  CHECK(back.kernel_dr0 == 0xffffffff81000100ull);
  CHECK(back.kernel_dr7 == dr7);
  cont(0);
  CHECK(k.breakpoints.empty());
}

TEST_CASE("kd dispatcher: unknown and unserved APIs get STATUS_UNSUCCESSFUL, never silence") {
  FakeKernel k;
  Harness h(k);
  h.d.start();
  for (uint32_t api : {0x3170u, 0x12345678u, kDbgKdReadIoSpaceApi, kDbgKdRebootApi, kDbgKdReadPhysicalMemoryApi,
                       kDbgKdWriteCustomBreakpointApi}) {
    auto out = h.request(make_request(api));
    REQUIRE(out.size() == 1);
    auto rh = reply_header(out[0]);
    CHECK(rh.api_number == api);
    CHECK(rh.return_status == kStatusUnsuccessful);
    CHECK(out[0].payload.size() == ManipulateState64::kSize);
  }
  // SetContext without a CONTEXT: a bad body, still answered.
  auto out = h.request(make_request(kDbgKdSetContextApi));
  REQUIRE(out.size() == 1);
  CHECK(reply_header(out[0]).return_status == kStatusUnsuccessful);
  // QueryMemory and MSRs the target lacks.
  out = h.request(make_request(kDbgKdQueryMemoryApi, 0, [](ManipulateState64& m) {
    set_union(m, QueryMemory64{0xffffffff81000000ull, 0, 0, 0});
  }));
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  CHECK(union_view<QueryMemory64>(reply_header(out[0])).address_space == 2);
  out = h.request(make_request(kDbgKdReadMachineSpecificRegister, 0, [](ManipulateState64& m) {
    set_union(m, ReadWriteMsr{0xC0000080, 0, 0});
  }));
  CHECK(reply_header(out[0]).return_status == kStatusUnsuccessful);
  out = h.request(make_request(kDbgKdReadMachineSpecificRegister, 0, [](ManipulateState64& m) {
    set_union(m, ReadWriteMsr{0xC0000100, 0, 0});  // fs_base: x86-64 Linux has it
  }));
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  // SwitchProcessor: the state change of that processor.
  out = h.request(make_request(kDbgKdSwitchProcessor, 1));
  REQUIRE(out.size() == 1);
  CHECK(parse_state_change(out[0].payload).value().header.processor == 1);
  CHECK(h.d.current_processor() == 1);
}

TEST_CASE("kd dispatcher: a local-kernel session refuses continue, breakpoints and writes, and goes on") {
  LocalKernelTarget::Paths paths;
  paths.kallsyms = "/nonexistent/kallsyms";
  paths.kcore = "/nonexistent/kcore";
  LocalKernelTarget lk(paths);
  Harness h(lk);
  h.d.start();
  REQUIRE(h.sent.size() == 2);
  CHECK(h.sent[1].type == kPacketTypeKdStateChange64);

  auto out = h.request(make_request(kDbgKdContinueApi2, 0, [](ManipulateState64& m) {
    set_union(m, Continue2Body{kDbgContinue, 0, 0, 0, 0});
  }));
  REQUIRE(out.size() == 2);
  CHECK(debug_text(out[0]).find("continue and step are not supported in a local kernel session") != std::string::npos);
  CHECK(out[1].type == kPacketTypeKdStateChange64);  // stopped where it was
  CHECK_FALSE(h.d.running());

  out = h.request(make_request(kDbgKdWriteBreakPointApi, 0, [](ManipulateState64& m) {
    set_union(m, WriteBreakPoint64{0xffffffff81000040ull, 0});
  }));
  REQUIRE(out.size() == 2);
  CHECK(debug_text(out[0]).find("breakpoints and watchpoints are not supported") != std::string::npos);
  CHECK(reply_header(out[1]).return_status == kStatusAccessDenied);

  out = h.request(make_request(kDbgKdWriteVirtualMemoryApi, 0, [](ManipulateState64& m) {
    set_union(m, MemoryTransfer64{0xffffffff81000200ull, 1, 0});
  }, Bytes{0xCC}));
  REQUIRE(out.size() == 2);
  CHECK(debug_text(out[0]).find("writing memory or registers is not supported") != std::string::npos);
  CHECK(reply_header(out[1]).return_status == kStatusAccessDenied);

  Bytes ctx = serialize_struct(Context{});
  out = h.request(make_request(kDbgKdSetContextApi, 0, {}, ctx));
  REQUIRE(out.size() == 2);
  CHECK(reply_header(out[1]).return_status == kStatusAccessDenied);

  // The session goes on: reads are served.
  out = h.request(make_request(kDbgKdGetContextApi));
  REQUIRE(out.size() == 1);
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  out = h.request(make_request(kDbgKdGetVersionApi));
  CHECK(reply_header(out[0]).return_status == kStatusSuccess);
  // Memory that can't be read (no kcore here): an error status, no crash.
  out = h.request(make_request(kDbgKdReadVirtualMemoryApi, 0, [](ManipulateState64& m) {
    set_union(m, MemoryTransfer64{0xffffffff81000000ull, 8, 0});
  }));
  CHECK(reply_header(out[0]).return_status == kStatusUnsuccessful);
}

TEST_CASE("kd dispatcher: mutated recorded requests are all answered and never crash") {
  // A deterministic mini-fuzz (the sanitizer build runs it): every
  // host->target manipulate request of the capture, with random bytes
  // changed, cut short or extended, straight into the dispatcher.
  std::vector<Bytes> requests;
  for (uint32_t api = kDbgKdMinimumManipulate; api < kDbgKdMaximumManipulate; ++api)
    if (auto r = recorded(api)) requests.push_back(r->request);
  REQUIRE(requests.size() >= 8);
  // Thousands of "not supported" lines would bury the test output.
  auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::err);
  FakeKernel k;
  Harness h(k);
  h.d.start();
  uint32_t seed = 12345;
  auto rnd = [&] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
  };
  for (int i = 0; i < 4000; ++i) {
    Bytes p = requests[rnd() % requests.size()];
    int edits = 1 + static_cast<int>(rnd() % 8);
    for (int e = 0; e < edits; ++e) {
      // Mostly the header and union (where the meaning is), sometimes anywhere.
      std::size_t at = rnd() % 4 ? rnd() % ManipulateState64::kSize : rnd() % p.size();
      p[at] = static_cast<uint8_t>(rnd());
    }
    if (rnd() % 5 == 0) p.resize(rnd() % (p.size() + 1));
    if (rnd() % 7 == 0) p.resize(p.size() + rnd() % 3000, static_cast<uint8_t>(rnd()));
    if (p.size() > kPacketMaxSize) p.resize(kPacketMaxSize);
    auto out = h.request(p);
    auto hdr = parse_manipulate_header(p);
    if (hdr && !k.is_running) {
      uint32_t api = hdr->api_number;
      bool silent = api == kDbgKdContinueApi || api == kDbgKdContinueApi2 || api == kDbgKdClearAllInternalBreakpointsApi;
      if (!silent) CHECK_MESSAGE(!out.empty(), "no answer to api " << api);
    }
    if (k.is_running) {
      k.is_running = false;
      StopEvent ev;
      ev.thread = {1, 1};
      ev.signal = SIGTRAP;
      h.d.handle_stop(ev);
    }
  }
  spdlog::set_level(level);
}

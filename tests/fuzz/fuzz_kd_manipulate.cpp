// libFuzzer target: KD message parsing (DBGKD_MANIPULATE_STATE64 requests
// and the other KD structures, protocol/kd/manipulate and structs) and the
// KD dispatcher (server/kd_dispatcher) on arbitrary request sequences.
//
// Input: byte 0 picks the target (bit 0), the rest is a sequence of records
//   [u8 op][u16 length, little-endian][length bytes]
// (a short last record takes what is left). op & 7:
//   0-4  a data packet: 0-3 DbgKdStateManipulate (the usual request), 4 a
//        packet of type (first payload byte % 12), the rest its payload
//   5    a break-in (0x62)
//   6    a RESET from the host
//   7    the target stops (if it runs): a breakpoint, a step or an exit,
//        on the processor the first payload byte names
// Every payload also goes through the structure parsers, whose round trips
// must be exact (parse then serialize gives back the input's bytes), and
// the reply builders.
//
// The targets, both harmless (nothing outside this process is touched):
//  - bit 0 clear: an in-process fake kernel (two vCPUs, x86-64 registers,
//    8 KiB of memory), which accepts writes, breakpoints and resumes, so
//    that the write, Dr7 and continue paths run;
//  - bit 0 set: the real LocalKernelTarget (read-only mode policy) with
//    /proc/kallsyms and the BTF as on this machine but its /proc/kcore
//    path pointed at a file that doesn't exist, so that no request ever
//    reads this machine's kernel memory.
//
// Checked: every packet the dispatcher sends fits a KD packet
// (frame_data_packet accepts it) and parses as what its type says; every
// manipulate reply echoes the request's ApiNumber; the dispatcher never
// sends while the target runs except its own prints, break-in refusals and
// the exit note.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "protocol/kd/framing.h"
#include "protocol/kd/manipulate.h"
#include "protocol/kd/structs.h"
#include "server/kd/kd_dispatcher.h"
#include "targets/local_kernel/local_kernel_target.h"
#include "targets/process/x86_registers.h"

using namespace dbgstub;
namespace kd = dbgstub::kd;

namespace {

[[noreturn]] void fail() { __builtin_trap(); }

constexpr uint64_t kMemBase = 0xffffffff81000000ull;
constexpr std::size_t kMemSize = 0x2000;

// A stopped two-vCPU kernel, as the unit tests' FakeKernel, with flat
// memory so that a fresh one per input is cheap.
class FakeKernel : public Target {
 public:
  // `xml` is the fixture's, which outlives every FakeKernel: not copied.
  FakeKernel(const std::string& xml, const std::string& g0, const std::string& g1, const std::string& mem)
      : xml_(xml), mem_(mem) {
    g_[0] = g0;
    g_[1] = g1;
  }
  Mode mode() const override { return Mode::Kernel; }
  std::string describe() const override { return "fuzz kernel"; }
  void set_stop_handler(StopHandler) override {}
  std::vector<ProcessInfo> processes() const override { return {}; }
  std::vector<ThreadRef> threads() const override { return {{1, 1}, {1, 2}}; }
  bool thread_alive(ThreadRef t) const override { return t.pid == 1 && (t.tid == 1 || t.tid == 2); }
  std::optional<StopEvent> last_stop() const override { return std::nullopt; }
  bool running() const override { return running_; }
  std::string target_xml() const override { return xml_; }
  Result<std::string> read_registers(ThreadRef t) override {
    if (!thread_alive(t)) return make_error(3, "no such thread");
    return g_[t.tid - 1];
  }
  Status write_registers(ThreadRef t, const std::string& data) override {
    if (running_) fail();  // the dispatcher only writes a stopped target
    if (!thread_alive(t)) return make_error(3, "no such thread");
    if (data.size() != g_[t.tid - 1].size()) fail();  // it edits the 'g' bytes in place
    g_[t.tid - 1] = data;
    return ok_status();
  }
  Result<std::string> read_register(ThreadRef, int) override { return make_error(95, "no"); }
  Status write_register(ThreadRef, int, const std::string&) override { return make_error(95, "no"); }
  std::vector<int> expedited_registers() const override { return {}; }
  Result<std::string> read_memory(int, uint64_t addr, std::size_t len) override {
    if (len > kd::kPacketMaxSize) fail();  // transfers are clamped to one packet
    if (addr < kMemBase || addr - kMemBase > kMemSize || len > kMemSize - (addr - kMemBase))
      return make_error(5, "unmapped");
    return mem_.substr(addr - kMemBase, len);
  }
  Status write_memory(int, uint64_t addr, const std::string& data) override {
    if (running_) fail();
    if (data.size() > kd::kPacketMaxSize) fail();
    if (addr < kMemBase || addr - kMemBase > kMemSize || data.size() > kMemSize - (addr - kMemBase))
      return make_error(5, "unmapped");
    mem_.replace(addr - kMemBase, data.size(), data);
    return ok_status();
  }
  Status insert_breakpoint(int, BreakpointType type, uint64_t addr, uint64_t kind) override {
    if (breakpoints_ >= 64) return make_error(28, "too many breakpoints");
    if (type != BreakpointType::Software && (kind == 0 || kind > 8)) fail();
    ++breakpoints_;
    (void)addr;
    return ok_status();
  }
  Status remove_breakpoint(int, BreakpointType, uint64_t, uint64_t) override {
    if (breakpoints_ > 0) --breakpoints_;
    return ok_status();
  }
  Status resume(const std::vector<ResumeAction>& actions) override {
    if (running_ || actions.empty()) fail();
    running_ = true;
    return ok_status();
  }
  Status interrupt() override {
    if (!running_) return make_error(3, "not running");  // after an exit
    interrupted_ = true;
    return ok_status();
  }
  Status kill_process(int, const KillOptions&) override { fail(); }
  Status detach_process(int) override { return ok_status(); }
  void release_all() override {}
  std::optional<uint64_t> kernel_base() override { return kMemBase; }

  void stopped() {
    running_ = false;
    interrupted_ = false;
  }

  // Back to the state the constructor gives, in the same buffers: one
  // FakeKernel serves every input, rather than 8 KiB of memory and both
  // register sets allocated (and, under ASan, filled) anew each time.
  void reset(const std::string& g0, const std::string& g1, const std::string& mem) {
    g_[0].assign(g0);
    g_[1].assign(g1);
    mem_.assign(mem);
    running_ = false;
    interrupted_ = false;
    breakpoints_ = 0;
  }

 private:
  const std::string& xml_;
  std::string g_[2];
  std::string mem_;
  bool running_ = false;
  bool interrupted_ = false;
  int breakpoints_ = 0;
};

struct Fixture {
  std::string xml = x86::target_xml();
  std::string g0, g1, mem;
  std::unique_ptr<LocalKernelTarget> local;
  std::unique_ptr<FakeKernel> fake;  // reset() at the start of each input
  // Each target's register map, from its own description, built once: the
  // descriptions never change, and parsing one took a tenth of each input.
  // The dispatcher itself is still made anew for every input.
  std::shared_ptr<const KdRegisterMap> fake_regs, local_regs;
};
Fixture* fixture = nullptr;

// The structure parsers promise exact round trips.
template <class T>
void round_trip(kd::ByteView b) {
  auto v = kd::parse_struct<T>(b);
  if (b.size() < T::kSize) {
    if (v) fail();
    return;
  }
  if (!v) fail();
  kd::Bytes back = kd::serialize_struct(*v);
  if (back.size() != T::kSize || !std::equal(back.begin(), back.end(), b.begin())) fail();
}

void check_messages(kd::ByteView p) {
  round_trip<kd::ManipulateState64>(p);
  round_trip<kd::Context>(p);
  round_trip<kd::KSpecialRegisters>(p);
  round_trip<kd::GetVersion64>(p);
  round_trip<kd::WaitStateChange>(p);
  round_trip<kd::DebugIo>(p);
  round_trip<kd::FileIo>(p);
  if (auto m = kd::parse_state_change(p)) {
    if (kd::serialize_state_change(*m) != kd::Bytes(p.begin(), p.end())) fail();
    (void)m->path();
    (void)m->header.exception();
    (void)m->header.load_symbols();
  }
  if (auto m = kd::parse_debug_io(p)) {
    if (kd::serialize_debug_io(*m) != kd::Bytes(p.begin(), p.end())) fail();
    if (m->text().size() > m->data.size()) fail();
  }
  if (auto m = kd::parse_file_io(p)) {
    if (kd::serialize_file_io(*m) != kd::Bytes(p.begin(), p.end())) fail();
  }
}

void check_reply(const kd::ManipulateState64& h, const kd::Bytes& reply) {
  if (reply.size() < kd::ManipulateState64::kSize || reply.size() > kd::kPacketMaxSize) fail();
  auto back = kd::parse_manipulate_header(reply);
  if (!back || back->api_number != h.api_number) fail();
}

void check_manipulate(kd::ByteView p) {
  auto r = kd::parse_manipulate(p);
  auto h = kd::parse_manipulate_header(p);
  if (r && !h) fail();
  if (!h) return;
  if (r && (r->header != *h || !(r->api() == h->api_number))) fail();
  if (r && r->data.size() != p.size() - kd::ManipulateState64::kSize) fail();
  (void)kd::manipulate_api_name(h->api_number);
  // The reply builders, on whatever the request carried.
  kd::ByteView data = p.size() > kd::ManipulateState64::kSize ? p.subspan(kd::ManipulateState64::kSize) : kd::ByteView();
  uint32_t status = h->return_status;
  check_reply(*h, kd::reply_status(*h, status));
  check_reply(*h, kd::reply_read_memory(*h, status, data));
  check_reply(*h, kd::reply_write_memory(*h, status, static_cast<uint32_t>(data.size())));
  check_reply(*h, kd::reply_get_context(*h, status, kd::Context{}));
  check_reply(*h, kd::reply_get_context_ex(*h, status, kd::Context{}));
  check_reply(*h, kd::reply_get_context_ex_bytes(*h, status, data));
  check_reply(*h, kd::reply_set_context_ex(*h, status, 1));
  check_reply(*h, kd::reply_write_breakpoint(*h, status, 2));
  check_reply(*h, kd::reply_get_version(*h, status, kd::GetVersion64{}));
  check_reply(*h, kd::reply_read_io(*h, status, 3));
  check_reply(*h, kd::reply_read_msr(*h, status, 4));
  std::vector<uint64_t> calls(data.size() / 2, 0x1234);
  check_reply(*h, kd::reply_query_special_calls(*h, status, calls));
  check_reply(*h, kd::reply_search_memory(*h, status, 5));
  check_reply(*h, kd::reply_query_memory(*h, status, 6, 7));
}

struct Sent {
  uint16_t type;
  kd::Bytes payload;
};

void check_sent(const Sent& s) {
  if (!kd::frame_data_packet(s.type, kd::kInitialPacketId, s.payload)) fail();
  switch (s.type) {
    case kd::kPacketTypeKdStateManipulate:
      if (!kd::parse_manipulate_header(s.payload)) fail();
      break;
    case kd::kPacketTypeKdDebugIo: {
      auto m = kd::parse_debug_io(s.payload);
      if (!m || m->text().size() != m->header.length_of_string) fail();
      break;
    }
    case kd::kPacketTypeKdStateChange64:
      if (!kd::parse_state_change(s.payload)) fail();
      break;
    default: fail();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  fixture = new Fixture;
  KdRegisterMap map(fixture->xml);
  const auto& last = x86::registers().back();
  std::size_t gsize = static_cast<std::size_t>(last.offset + last.bitsize / 8);
  fixture->g0.assign(gsize, '\0');
  fixture->g1.assign(gsize, '\0');
  map.set(fixture->g0, "rip", kMemBase + 0x10);
  map.set(fixture->g0, "rsp", kMemBase + 0x1f00);
  map.set(fixture->g0, "eflags", 0x246);
  map.set(fixture->g0, "cs", 0x10);
  map.set(fixture->g0, "mxcsr", 0x1f80);
  map.set(fixture->g1, "rip", kMemBase + 0xff8);  // the instruction read crosses nothing, but ends near the edge
  fixture->mem.resize(kMemSize);
  for (std::size_t i = 0; i < kMemSize; ++i) fixture->mem[i] = static_cast<char>((i * 7) & 0xff);

  LocalKernelTarget::Paths paths;
  paths.kcore = "/nonexistent/dbgstub-fuzz/kcore";  // never this machine's memory
  fixture->local = std::make_unique<LocalKernelTarget>(paths);
  // Loads /proc/kallsyms now (once, cached) rather than in the first input
  // that picks the local kernel.
  (void)fixture->local->kernel_base();
  fixture->fake = std::make_unique<FakeKernel>(fixture->xml, fixture->g0, fixture->g1, fixture->mem);
  fixture->fake_regs = std::make_shared<const KdRegisterMap>(fixture->xml);
  fixture->local_regs = std::make_shared<const KdRegisterMap>(fixture->local->target_xml());
  // Once: a dispatcher that builds its own map from the target (as the KD
  // session's does) starts exactly as one given the shared map.
  for (bool local : {false, true}) {
    FakeKernel fake(fixture->xml, fixture->g0, fixture->g1, fixture->mem);
    Target& target = local ? static_cast<Target&>(*fixture->local) : static_cast<Target&>(fake);
    std::vector<Sent> own, shared;
    KdDispatcher a(target, KdHooks{[&](uint16_t type, kd::Bytes p) { own.push_back({type, std::move(p)}); }});
    KdDispatcher b(target, KdHooks{[&](uint16_t type, kd::Bytes p) { shared.push_back({type, std::move(p)}); }},
                   local ? fixture->local_regs : fixture->fake_regs);
    a.start();
    b.start();
    if (own.empty() || own.size() != shared.size()) fail();
    for (std::size_t i = 0; i < own.size(); ++i)
      if (own[i].type != shared[i].type || own[i].payload != shared[i].payload) fail();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  bool use_local = data[0] & 1;
  FakeKernel& fake = *fixture->fake;
  fake.reset(fixture->g0, fixture->g1, fixture->mem);
  Target& target = use_local ? static_cast<Target&>(*fixture->local) : static_cast<Target&>(fake);

  std::vector<Sent> sent;
  KdDispatcher d(target, KdHooks{[&](uint16_t type, kd::Bytes p) { sent.push_back({type, std::move(p)}); }},
                 use_local ? fixture->local_regs : fixture->fake_regs);
  d.start();

  bool ended = false;  // the target "exited": the dispatcher waits for nothing more
  std::size_t pos = 1;
  while (pos < size) {
    uint8_t op = data[pos++];
    std::size_t len = 0;
    if (pos + 2 <= size) {
      len = static_cast<std::size_t>(data[pos]) | (static_cast<std::size_t>(data[pos + 1]) << 8);
      pos += 2;
    } else {
      pos = size;
    }
    len = std::min(len, size - pos);
    kd::ByteView payload(data + pos, len);
    pos += len;

    check_messages(payload);
    check_manipulate(payload);

    bool was_running = d.running();
    sent.clear();
    switch (op & 7) {
      case 0: case 1: case 2: case 3:
        // The session delivers only packets within PACKET_MAX_SIZE and at
        // least their type's header (the framer drops the rest).
        if (payload.size() > kd::kPacketMaxSize || payload.size() < kd::min_payload_size(kd::kPacketTypeKdStateManipulate))
          break;
        d.handle_packet(kd::DataPacket{kd::kPacketTypeKdStateManipulate, kd::kInitialPacketId,
                                       kd::Bytes(payload.begin(), payload.end())});
        break;
      case 4: {
        if (payload.empty()) break;
        uint16_t type = static_cast<uint16_t>(payload[0] % kd::kPacketTypeMax);
        kd::ByteView rest = payload.subspan(1);
        if (rest.size() > kd::kPacketMaxSize || rest.size() < kd::min_payload_size(type)) break;
        d.handle_packet(kd::DataPacket{type, kd::kInitialPacketId, kd::Bytes(rest.begin(), rest.end())});
        break;
      }
      case 5: d.on_break_in(); break;
      case 6: d.on_reset(); break;
      case 7: {
        if (!fake.running()) break;
        fake.stopped();
        StopEvent ev;
        uint8_t b = payload.empty() ? 0 : payload[0];
        ev.thread = ThreadRef{1, 1 + (b & 1)};
        ev.kind = (b & 6) == 6 ? StopEvent::Kind::Exited : StopEvent::Kind::Signal;
        ev.reason = (b & 6) == 2 ? StopEvent::Reason::Step : StopEvent::Reason::SwBreak;
        ev.signal = 5;
        ended = ended || ev.kind == StopEvent::Kind::Exited;
        d.handle_stop(ev);
        break;
      }
    }
    for (const auto& s : sent) {
      check_sent(s);
      // A running target is asked nothing and answers nothing but prints.
      if (was_running && d.running() && s.type != kd::kPacketTypeKdDebugIo && s.type != kd::kPacketTypeKdStateManipulate)
        fail();
    }
    // The dispatcher's idea of the target follows the target's (after an
    // exit the dispatcher stays "running": nothing will stop again).
    if (!use_local && !ended && d.running() != target.running()) fail();
  }
  return 0;
}

#include "server/kd/kd_dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "server/mode_policy.h"
#include "targets/vm/target_description.h"
#include "protocol/rsp/hex.h"

namespace dbgstub {

using namespace kd;

namespace {

// What GetVersion says the target is. The high byte of MajorVersion is the
// OS type (DBGKD_MAJOR_TYPES); 0 would claim Windows NT and make WinDbg
// look for NT's debugger data block, loaded-module list and memory manager.
// Singularity, the precedent for a non-NT kernel speaking KD, reports its
// own type with DBGKD_VERS_FLAG_NOMM and no debugger data list; dbgstub does
// the same with the Singularity type, the one non-NT type WinDbg is known to
// debug without NT's data. MinorVersion (the NT build number) is 0.
constexpr uint16_t kMajorTypeNonNt = kDbgKdMajorSingularity;
constexpr uint16_t kFreeBuild = 0xF;

constexpr uint64_t kKernelSpaceStart = 0xFFFF800000000000ull;
// DBGKD_QUERY_MEMORY address spaces and flags.
constexpr uint32_t kQueryMemoryProcess = 0, kQueryMemoryKernel = 2;
constexpr uint32_t kQueryMemoryRead = 1, kQueryMemoryWrite = 2, kQueryMemoryExecute = 4;

// The CONTEXT fields that are one register each, listed once for both
// directions (kd_context_from_registers, kd_registers_from_context):
// fn(register name, the CONTEXT_* flags a SetContext carries it under, what
// a GetContext says when the target has no such register, the field).
template <class C, class F>
void each_register_field(C& c, F&& fn) {
  fn("rax", kContextInteger, 0, c.rax); fn("rcx", kContextInteger, 0, c.rcx); fn("rdx", kContextInteger, 0, c.rdx);
  fn("rbx", kContextInteger, 0, c.rbx); fn("rsi", kContextInteger, 0, c.rsi); fn("rdi", kContextInteger, 0, c.rdi);
  fn("r8", kContextInteger, 0, c.r8); fn("r9", kContextInteger, 0, c.r9); fn("r10", kContextInteger, 0, c.r10);
  fn("r11", kContextInteger, 0, c.r11); fn("r12", kContextInteger, 0, c.r12); fn("r13", kContextInteger, 0, c.r13);
  fn("r14", kContextInteger, 0, c.r14); fn("r15", kContextInteger, 0, c.r15);
  // rsp and rbp are CONTEXT_CONTROL's, not CONTEXT_INTEGER's.
  fn("rsp", kContextControl, 0, c.rsp); fn("rbp", kContextControl, 0, c.rbp); fn("rip", kContextControl, 0, c.rip);
  fn("eflags", kContextControl, 0, c.eflags); fn("cs", kContextControl, 0, c.seg_cs);
  fn("ss", kContextControl, 0, c.seg_ss);
  fn("ds", kContextSegments, 0, c.seg_ds); fn("es", kContextSegments, 0, c.seg_es);
  fn("fs", kContextSegments, 0, c.seg_fs); fn("gs", kContextSegments, 0, c.seg_gs);
  fn("fctrl", kContextFloatingPoint, 0x37F, c.flt_save.control_word);
  fn("fstat", kContextFloatingPoint, 0, c.flt_save.status_word);
  fn("mxcsr", kContextFloatingPoint, 0x1F80, c.flt_save.mx_csr);
}

// The x87 and SSE registers of the FXSAVE area, as raw bytes:
// fn(register name, the field).
template <class X, class F>
void each_vector_register(X& f, F&& fn) {
  for (std::size_t i = 0; i < 8; ++i) fn("st" + std::to_string(i), f.float_registers[i]);
  for (std::size_t i = 0; i < 16; ++i) fn("xmm" + std::to_string(i), f.xmm_registers[i]);
}

std::string m128_bytes(const M128A& m) {
  std::string s(16, '\0');
  for (int i = 0; i < 8; ++i) {
    s[static_cast<std::size_t>(i)] = static_cast<char>(m.low >> (8 * i));
    s[static_cast<std::size_t>(8 + i)] = static_cast<char>(m.high >> (8 * i));
  }
  return s;
}

M128A m128_from(const std::string& s) {
  M128A m;
  for (std::size_t i = 0; i < 16 && i < s.size(); ++i) {
    auto b = static_cast<uint64_t>(static_cast<unsigned char>(s[i]));
    if (i < 8) m.low |= b << (8 * i);
    else m.high |= b << (8 * (i - 8));
  }
  return m;
}

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

}  // namespace

// ---------------------------------------------------------------------------
// Register layout

KdRegisterMap::KdRegisterMap(const std::string& target_xml) {
  auto regs = vm::parse_registers(target_xml);
  std::sort(regs.begin(), regs.end(), [](const auto& a, const auto& b) { return a.regno < b.regno; });
  std::size_t off = 0;
  for (const auto& r : regs) {
    if (r.bitsize <= 0 || r.bitsize % 8) continue;
    std::size_t size = static_cast<std::size_t>(r.bitsize / 8);
    regs_.emplace(r.name, Reg{r.regno, off, size});
    off += size;
  }
}

std::optional<KdRegisterMap::Reg> KdRegisterMap::find(std::string_view name) const {
  auto it = regs_.find(name);
  if (it == regs_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> KdRegisterMap::get_raw(const std::string& g, std::string_view name) const {
  auto r = find(name);
  if (!r || r->offset + r->size > g.size()) return std::nullopt;
  return g.substr(r->offset, r->size);
}

std::optional<uint64_t> KdRegisterMap::get(const std::string& g, std::string_view name) const {
  // As get_raw, read in place rather than through a copy of the bytes.
  auto r = find(name);
  if (!r || r->offset + r->size > g.size()) return std::nullopt;
  uint64_t v = 0;
  for (std::size_t i = 0; i < r->size && i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(g[r->offset + i])) << (8 * i);
  return v;
}

bool KdRegisterMap::set_raw(std::string& g, std::string_view name, const std::string& bytes) const {
  auto r = find(name);
  if (!r || r->offset + r->size > g.size()) return false;
  for (std::size_t i = 0; i < r->size; ++i) g[r->offset + i] = i < bytes.size() ? bytes[i] : '\0';
  return true;
}

bool KdRegisterMap::set(std::string& g, std::string_view name, uint64_t value) const {
  std::string b(8, '\0');
  for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<char>(value >> (8 * i));
  return set_raw(g, name, b);
}

Context kd_context_from_registers(const KdRegisterMap& map, const std::string& g) {
  Context c;
  c.context_flags = kContextControl | kContextInteger | kContextSegments;
  bool fp = map.has("xmm0") || map.has("st0");
  if (fp) c.context_flags |= kContextFloatingPoint;
  each_register_field(c, [&](const char* reg, uint32_t group, uint64_t fallback, auto& field) {
    if (group == kContextFloatingPoint && !fp) return;
    field = static_cast<std::remove_reference_t<decltype(field)>>(map.get(g, reg).value_or(fallback));
  });
  if (fp) {
    auto& f = c.flt_save;
    // gdb's ftag is the full tag word; FXSAVE keeps one "not empty" bit each.
    uint64_t ftag = map.get(g, "ftag").value_or(0xFFFF);
    uint8_t abridged = 0;
    for (int i = 0; i < 8; ++i)
      if (((ftag >> (2 * i)) & 3) != 3) abridged = static_cast<uint8_t>(abridged | (1u << i));
    f.tag_word = abridged;
    // GetContext only: a SetContext leaves these registers alone.
    f.error_opcode = static_cast<uint16_t>(map.get(g, "fop").value_or(0));
    f.error_offset = static_cast<uint32_t>(map.get(g, "fioff").value_or(0));
    f.error_selector = static_cast<uint16_t>(map.get(g, "fiseg").value_or(0));
    f.data_offset = static_cast<uint32_t>(map.get(g, "fooff").value_or(0));
    f.data_selector = static_cast<uint16_t>(map.get(g, "foseg").value_or(0));
    f.mx_csr_mask = 0xFFFF;
    c.mx_csr = f.mx_csr;
    each_vector_register(f, [&](const std::string& reg, M128A& field) {
      if (auto raw = map.get_raw(g, reg)) field = m128_from(*raw);
    });
  }
  return c;
}

void kd_registers_from_context(const KdRegisterMap& map, const Context& c, std::string& g) {
  uint32_t flags = c.context_flags;
  bool all = (flags & kContextAmd64) == 0;  // no architecture bit: take everything
  auto carried = [&](uint32_t group) { return all || (flags & group) == group; };
  each_register_field(c, [&](const char* reg, uint32_t group, uint64_t, const auto& field) {
    if (carried(group)) map.set(g, reg, field);
  });
  if (carried(kContextFloatingPoint)) {
    const auto& f = c.flt_save;
    uint64_t ftag = 0;
    for (int i = 0; i < 8; ++i)
      if (!(f.tag_word & (1u << i))) ftag |= 3ull << (2 * i);
    map.set(g, "ftag", ftag);
    each_vector_register(f, [&](const std::string& reg, const M128A& field) { map.set_raw(g, reg, m128_bytes(field)); });
  }
}

KSpecialRegisters kd_special_from_registers(const KdRegisterMap& map, const std::string& g,
                                            std::vector<std::string>* missing) {
  KSpecialRegisters s;
  auto take = [&](const char* name, uint64_t& field) {
    if (auto v = map.get(g, name)) field = *v;
    else if (missing) missing->push_back(name);
  };
  take("cr0", s.cr0);
  take("cr2", s.cr2);
  take("cr3", s.cr3);
  take("cr4", s.cr4);
  s.cr8 = map.get(g, "cr8").value_or(0);
  s.msr_gs_base = map.get(g, "gs_base").value_or(0);
  s.msr_gs_swap = map.get(g, "k_gs_base").value_or(0);
  s.mx_csr = static_cast<uint32_t>(map.get(g, "mxcsr").value_or(0));
  return s;
}

// ---------------------------------------------------------------------------
// Dispatcher

KdDispatcher::KdDispatcher(Target& target, KdHooks hooks, std::shared_ptr<const KdRegisterMap> regs)
    : target_(target),
      hooks_(std::move(hooks)),
      regs_(regs ? std::move(regs) : std::make_shared<const KdRegisterMap>(target.target_xml())) {}

void KdDispatcher::start() {
  refresh_cpus();
  print("dbgstub: KD front end for the " + target_.describe() + " (" + mode_name(target_.mode()) +
        " mode; not Windows: no NT debugger data)\n");
  running_ = target_.running();
  if (!running_) report_stop(kStatusBreakpoint);
}

void KdDispatcher::on_reset() {
  // The session resends what was pending; a stop never reported (the
  // target was running at connect and has stopped since) goes out now.
  if (!running_ && !reported_) report_stop(kStatusBreakpoint);
}

void KdDispatcher::on_break_in() {
  if (!running_) {
    if (!reported_) report_stop(kStatusBreakpoint);
    return;
  }
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Interrupt); !st) {
    print("dbgstub: " + st.error().message + "\n");
    return;
  }
  if (auto st = target_.interrupt(); !st) print("dbgstub: break-in failed: " + st.error().message + "\n");
}

void KdDispatcher::handle_stop(const StopEvent& ev) {
  if (!running_) return;
  if (ev.kind != StopEvent::Kind::Signal) {
    print("dbgstub: the target ended (" + std::string(ev.kind == StopEvent::Kind::Exited ? "exited" : "gone") +
          ")\n");
    return;
  }
  running_ = false;
  refresh_cpus();
  for (std::size_t i = 0; i < cpus_.size(); ++i)
    if (cpus_[i] == ev.thread) current_cpu_ = static_cast<uint16_t>(i);
  uint32_t code = ev.reason == StopEvent::Reason::Step ? kStatusSingleStep : kStatusBreakpoint;
  report_stop(code);
}

void KdDispatcher::print(const std::string& text) {
  spdlog::info("kd: {}", text.substr(0, text.find_last_not_of('\n') + 1));
  // PACKET_MAX_SIZE bounds one print; long text goes in pieces.
  constexpr std::size_t kChunk = kPacketMaxSize - DebugIo::kSize;
  for (std::size_t off = 0; off < text.size(); off += kChunk)
    hooks_.send(kPacketTypeKdDebugIo,
                serialize_debug_io(make_print_string(std::string_view(text).substr(off, kChunk), current_cpu_)));
}

void KdDispatcher::refresh_cpus() {
  cpus_ = target_.threads();
  if (cpus_.empty()) cpus_.push_back(ThreadRef{1, 1});
  if (current_cpu_ >= cpus_.size()) current_cpu_ = 0;
}

ThreadRef KdDispatcher::thread_for(uint16_t processor) const {
  if (processor < cpus_.size()) return cpus_[processor];
  return cpus_.empty() ? ThreadRef{1, 1} : cpus_[std::min<std::size_t>(current_cpu_, cpus_.size() - 1)];
}

Result<std::string> KdDispatcher::registers_of(ThreadRef t) { return target_.read_registers(t); }

GetVersion64 KdDispatcher::version() const {
  GetVersion64 v;
  v.major_version = static_cast<uint16_t>((kMajorTypeNonNt << 8) | kFreeBuild);
  v.minor_version = 0;
  v.protocol_version = kDbgKd64BitProtocolVersion2;
  v.kd_secondary_version = kKdSecondaryVersionAmd64Context;
  v.flags = kDbgKdVersFlagPtr64 | kDbgKdVersFlagNoMm;
  if (cpus_.size() > 1) v.flags |= kDbgKdVersFlagMp;
  v.machine_type = kImageFileMachineAmd64;
  v.max_packet_type = static_cast<uint8_t>(kPacketTypeMax);
  v.max_state_change = static_cast<uint8_t>(kDbgKdMaximumStateChange - kDbgKdExceptionStateChange);
  v.max_manipulate = static_cast<uint8_t>(kDbgKdMaximumManipulate - kDbgKdMinimumManipulate);
  v.kern_base = target_.kernel_base().value_or(0);
  v.ps_loaded_module_list = 0;  // no NT module list
  v.debugger_data_list = 0;     // no KDDEBUGGER_DATA64
  return v;
}

void KdDispatcher::report_stop(uint32_t exception_code) {
  ThreadRef t = thread_for(current_cpu_);
  StateChangeMessage m;
  WaitStateChange& h = m.header;
  h.new_state = kDbgKdExceptionStateChange;
  h.processor_level = 0;
  h.processor = current_cpu_;
  h.number_processors = static_cast<uint32_t>(cpus_.size());
  h.thread = 0;  // no KTHREAD: the guest is not NT
  std::string g;
  if (auto r = registers_of(t)) g = *r;
  else spdlog::warn("kd: registers of processor {}: {}", current_cpu_, r.error().message);
  uint64_t pc = regs_->get(g, "rip").value_or(0);
  h.program_counter = pc;
  Exception64 e;
  e.record.exception_code = exception_code;
  e.record.exception_address = pc;
  if (exception_code == kStatusBreakpoint) e.record.number_parameters = 1;  // BREAKPOINT_BREAK
  e.first_chance = 1;
  h.set_exception(e);
  ControlReport& cr = h.control_report;
  cr.dr6 = regs_->get(g, "dr6").value_or(0);
  cr.dr7 = regs_->get(g, "dr7").value_or(dr7_);
  cr.eflags = static_cast<uint32_t>(regs_->get(g, "eflags").value_or(0));
  cr.report_flags = kReportIncludesSegs;
  cr.seg_cs = static_cast<uint16_t>(regs_->get(g, "cs").value_or(0));
  cr.seg_ds = static_cast<uint16_t>(regs_->get(g, "ds").value_or(0));
  cr.seg_es = static_cast<uint16_t>(regs_->get(g, "es").value_or(0));
  cr.seg_fs = static_cast<uint16_t>(regs_->get(g, "fs").value_or(0));
  // The instructions at pc (as many as can be read, up to 16).
  for (std::size_t n = ControlReport::kMaxStream; n > 0 && pc != 0; n /= 2) {
    auto mem = target_.read_memory(t.pid, pc, n);
    if (!mem) continue;
    cr.instruction_count = static_cast<uint16_t>(mem->size());
    std::copy(mem->begin(), mem->end(), cr.instruction_stream.begin());
    break;
  }
  reported_ = true;
  hooks_.send(kPacketTypeKdStateChange64, serialize_state_change(m));
}

void KdDispatcher::reply(Bytes payload) { hooks_.send(kPacketTypeKdStateManipulate, std::move(payload)); }

void KdDispatcher::refuse(const ManipulateState64& h, const std::string& why) {
  print("dbgstub: " + std::string(manipulate_api_name(h.api_number)) + " refused: " + why + "\n");
  reply(reply_status(h, kStatusAccessDenied));
}

void KdDispatcher::handle_packet(const DataPacket& p) {
  switch (p.type) {
    case kPacketTypeKdStateManipulate:
      handle_manipulate(p.payload);
      return;
    case kPacketTypeKdDebugIo:
      // The answer to a GetString prompt: dbgstub never prompts.
      spdlog::debug("kd: debug I/O from the host ignored");
      return;
    default:
      spdlog::warn("kd: packet type {} from the host ignored", p.type);
      return;
  }
}

void KdDispatcher::handle_manipulate(const Bytes& payload) {
  auto parsed = parse_manipulate(payload);
  if (!parsed) {
    // A request whose body is bad still gets its answer.
    auto h = parse_manipulate_header(payload);
    spdlog::warn("kd: bad manipulate request: {}", parsed.error().message);
    if (h) reply(reply_status(*h, kStatusUnsuccessful));
    return;
  }
  const ManipulateRequest& r = *parsed;
  if (running_) {
    // Only a stopped target takes requests; WinDbg never sends them then.
    spdlog::warn("kd: {} while the target runs: refused", manipulate_api_name(r.api()));
    reply(reply_status(r.header, kStatusUnsuccessful));
    return;
  }
  spdlog::debug("kd: {} (processor {})", manipulate_api_name(r.api()), r.header.processor);
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, req::ReadVirtualMemory>) on_read_virtual(r, b);
        else if constexpr (std::is_same_v<T, req::WriteVirtualMemory>) on_write_virtual(r, b);
        else if constexpr (std::is_same_v<T, req::GetContext>) on_get_context(r, false);
        else if constexpr (std::is_same_v<T, req::GetContextEx>) on_get_context(r, true);
        else if constexpr (std::is_same_v<T, req::SetContext>) on_set_context(r, b.context, std::nullopt);
        else if constexpr (std::is_same_v<T, req::SetContextEx>) on_set_context_ex(r, b);
        else if constexpr (std::is_same_v<T, req::ReadControlSpace>) on_read_control(r, b);
        else if constexpr (std::is_same_v<T, req::WriteControlSpace>) on_write_control(r, b);
        else if constexpr (std::is_same_v<T, req::WriteBreakPoint>) on_write_breakpoint(r, b.address);
        else if constexpr (std::is_same_v<T, req::RestoreBreakPoint>) on_restore_breakpoint(r, b.handle);
        else if constexpr (std::is_same_v<T, req::Continue>) on_continue(r, false);
        else if constexpr (std::is_same_v<T, req::Continue2>) on_continue(r, b.trace_flag != 0);
        else if constexpr (std::is_same_v<T, req::GetVersion>) reply(reply_get_version(r.header, kStatusSuccess, version()));
        else if constexpr (std::is_same_v<T, req::SwitchProcessor>) on_switch_processor(r);
        else if constexpr (std::is_same_v<T, req::ClearAllInternalBreakpoints>) { /* no reply, as NT */ }
        else if constexpr (std::is_same_v<T, req::QueryMemory>) on_query_memory(r, b);
        else if constexpr (std::is_same_v<T, req::ReadMsr>) on_read_msr(r, b.msr);
        else if constexpr (std::is_same_v<T, req::Unsupported>) {
          if (b.api == kDbgKdWriteBreakPointExApi || b.api == kDbgKdRestoreBreakPointExApi) {
            on_breakpoint_ex(r, b.api == kDbgKdWriteBreakPointExApi);
            return;
          }
          spdlog::info("kd: {} ({:#x}) not supported", manipulate_api_name(b.api), b.api);
          reply(reply_status(r.header, kStatusUnsuccessful));
        } else {
          // Modelled by the codec but not served: physical memory, I/O
          // space, MSR writes, special calls, reboot, bug check, search.
          spdlog::info("kd: {} not supported", manipulate_api_name(r.api()));
          reply(reply_status(r.header, kStatusUnsuccessful));
        }
      },
      r.body);
}

void KdDispatcher::on_read_virtual(const ManipulateRequest& r, const req::ReadVirtualMemory& m) {
  ThreadRef t = thread_for(r.header.processor);
  std::size_t len = clamp_transfer(m.transfer_count);
  auto data = target_.read_memory(t.pid, m.address, len);
  if (!data && len > 0) {
    // A read across into an unreadable page: what precedes it, as NT does.
    std::size_t first = static_cast<std::size_t>(0x1000 - (m.address & 0xFFF));
    if (first < len) data = target_.read_memory(t.pid, m.address, first);
  }
  if (!data) {
    spdlog::debug("kd: read of {} bytes at {}: {}", len, rsp::hex_0x(m.address), data.error().message);
    reply(reply_read_memory(r.header, kStatusUnsuccessful, {}));
    return;
  }
  Bytes b = to_bytes(*data);
  reply(reply_read_memory(r.header, kStatusSuccess, b));
}

void KdDispatcher::on_write_virtual(const ManipulateRequest& r, const req::WriteVirtualMemory& m) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteMemory); !st) return refuse(r.header, st.error().message);
  ThreadRef t = thread_for(r.header.processor);
  std::size_t n = std::min<std::size_t>(m.transfer_count, m.data.size());
  auto st = target_.write_memory(t.pid, m.address, std::string(m.data.begin(), m.data.begin() + static_cast<std::ptrdiff_t>(n)));
  if (!st) {
    spdlog::debug("kd: write of {} bytes at {}: {}", n, rsp::hex_0x(m.address), st.error().message);
    reply(reply_write_memory(r.header, kStatusUnsuccessful, 0));
    return;
  }
  reply(reply_write_memory(r.header, kStatusSuccess, static_cast<uint32_t>(n)));
}

void KdDispatcher::on_get_context(const ManipulateRequest& r, bool ex) {
  auto g = registers_of(thread_for(r.header.processor));
  if (!g) {
    spdlog::warn("kd: registers: {}", g.error().message);
    reply(ex ? reply_get_context_ex_bytes(r.header, kStatusUnsuccessful, {})
             : reply_status(r.header, kStatusUnsuccessful));
    return;
  }
  Context c = kd_context_from_registers(*regs_, *g);
  c.dr0 = dr_[0];
  c.dr1 = dr_[1];
  c.dr2 = dr_[2];
  c.dr3 = dr_[3];
  c.dr7 = dr7_;
  c.context_flags |= kContextDebugRegisters;
  reply(ex ? reply_get_context_ex(r.header, kStatusSuccess, c) : reply_get_context(r.header, kStatusSuccess, c));
}

void KdDispatcher::on_set_context(const ManipulateRequest& r, const Context& ctx, std::optional<uint32_t> ex_bytes) {
  auto fail = [&](uint32_t status) {
    reply(ex_bytes ? reply_set_context_ex(r.header, status, 0) : reply_status(r.header, status));
  };
  if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteRegisters); !st) {
    print("dbgstub: " + std::string(manipulate_api_name(r.api())) + " refused: " + st.error().message + "\n");
    return fail(kStatusAccessDenied);
  }
  ThreadRef t = thread_for(r.header.processor);
  auto g = registers_of(t);
  if (!g) return fail(kStatusUnsuccessful);
  if ((ctx.context_flags & kContextDebugRegisters) == kContextDebugRegisters)
    dr_ = {ctx.dr0, ctx.dr1, ctx.dr2, ctx.dr3};
  std::string before = *g;
  kd_registers_from_context(*regs_, ctx, *g);
  if (*g != before) {
    if (auto st = target_.write_registers(t, *g); !st) {
      spdlog::warn("kd: writing registers: {}", st.error().message);
      return fail(kStatusUnsuccessful);
    }
  }
  reply(ex_bytes ? reply_set_context_ex(r.header, kStatusSuccess, *ex_bytes) : reply_status(r.header, kStatusSuccess));
}

void KdDispatcher::on_set_context_ex(const ManipulateRequest& r, const req::SetContextEx& s) {
  // The window [Offset, Offset+ByteCount) of the CONTEXT over the current one.
  auto g = registers_of(thread_for(r.header.processor));
  if (!g) {
    reply(reply_set_context_ex(r.header, kStatusUnsuccessful, 0));
    return;
  }
  Bytes cur = serialize_struct(kd_context_from_registers(*regs_, *g));
  if (s.offset > cur.size()) {
    reply(reply_set_context_ex(r.header, kStatusUnsuccessful, 0));
    return;
  }
  std::size_t n = std::min<std::size_t>({s.byte_count, s.data.size(), cur.size() - s.offset});
  std::copy(s.data.begin(), s.data.begin() + static_cast<std::ptrdiff_t>(n), cur.begin() + s.offset);
  on_set_context(r, parse_context(cur).value(), static_cast<uint32_t>(n));
}

void KdDispatcher::on_read_control(const ManipulateRequest& r, const req::ReadControlSpace& c) {
  if (c.address != kAmd64DebugControlSpaceKspecial) {
    // KPCR, KPRCB, KTHREAD: NT structures this guest doesn't have.
    reply(reply_read_memory(r.header, kStatusUnsuccessful, {}));
    return;
  }
  auto g = registers_of(thread_for(r.header.processor));
  if (!g) {
    reply(reply_read_memory(r.header, kStatusUnsuccessful, {}));
    return;
  }
  std::vector<std::string> missing;
  KSpecialRegisters s = kd_special_from_registers(*regs_, *g, &missing);
  s.kernel_dr0 = dr_[0];
  s.kernel_dr1 = dr_[1];
  s.kernel_dr2 = dr_[2];
  s.kernel_dr3 = dr_[3];
  s.kernel_dr7 = dr7_;
  if (!missing.empty() && !noted_special_) {
    noted_special_ = true;
    std::string names;
    for (auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    print("dbgstub: this target does not show " + names + ": they read as 0 in the special registers\n");
  }
  Bytes b = serialize_struct(s);
  // Later NT builds read 0xF0 bytes (MsrFsBase and padding follow).
  std::size_t want = clamp_transfer(c.transfer_count);
  b.resize(want, 0);
  if (want >= 0xE8) {
    uint64_t fs_base = regs_->get(*g, "fs_base").value_or(0);
    for (int i = 0; i < 8; ++i) b[0xE0 + static_cast<std::size_t>(i)] = static_cast<uint8_t>(fs_base >> (8 * i));
  }
  reply(reply_read_memory(r.header, kStatusSuccess, b));
}

void KdDispatcher::on_write_control(const ManipulateRequest& r, const req::WriteControlSpace& c) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::WriteRegisters); !st) {
    print("dbgstub: " + std::string(manipulate_api_name(r.api())) + " refused: " + st.error().message + "\n");
    reply(reply_write_memory(r.header, kStatusAccessDenied, 0));
    return;
  }
  if (c.address != kAmd64DebugControlSpaceKspecial) {
    reply(reply_write_memory(r.header, kStatusUnsuccessful, 0));
    return;
  }
  ThreadRef t = thread_for(r.header.processor);
  auto g = registers_of(t);
  auto s = parse_special_registers(c.data);
  if (!g || !s) {
    reply(reply_write_memory(r.header, kStatusUnsuccessful, 0));
    return;
  }
  // Debug registers: kept here, applied by the next Continue2's Dr7.
  dr_ = {s->kernel_dr0, s->kernel_dr1, s->kernel_dr2, s->kernel_dr3};
  // WinDbg writes back what it read: change only what differs and exists.
  std::string before = *g;
  KSpecialRegisters cur = kd_special_from_registers(*regs_, *g);
  auto put = [&](const char* name, uint64_t now, uint64_t want) {
    if (now != want) regs_->set(*g, name, want);
  };
  put("cr0", cur.cr0, s->cr0);
  put("cr2", cur.cr2, s->cr2);
  put("cr3", cur.cr3, s->cr3);
  put("cr4", cur.cr4, s->cr4);
  put("cr8", cur.cr8, s->cr8);
  if (*g != before) {
    if (auto st = target_.write_registers(t, *g); !st) {
      reply(reply_write_memory(r.header, kStatusUnsuccessful, 0));
      return;
    }
  }
  reply(reply_write_memory(r.header, kStatusSuccess, static_cast<uint32_t>(c.data.size())));
}

void KdDispatcher::on_write_breakpoint(const ManipulateRequest& r, uint64_t address) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Breakpoint); !st) {
    print("dbgstub: " + std::string(manipulate_api_name(r.api())) + " refused: " + st.error().message + "\n");
    reply(reply_write_breakpoint(r.header, kStatusAccessDenied, 0));
    return;
  }
  ThreadRef t = thread_for(r.header.processor);
  if (auto st = target_.insert_breakpoint(t.pid, BreakpointType::Software, address, 1); !st) {
    spdlog::info("kd: breakpoint at {}: {}", rsp::hex_0x(address), st.error().message);
    reply(reply_write_breakpoint(r.header, kStatusUnsuccessful, 0));
    return;
  }
  uint32_t handle = next_handle_++;
  breakpoints_[handle] = address;
  reply(reply_write_breakpoint(r.header, kStatusSuccess, handle));
}

void KdDispatcher::on_restore_breakpoint(const ManipulateRequest& r, uint32_t handle) {
  // WinDbg restores handles of earlier sessions at connect: those are
  // unknown here and answered as NT does (STATUS_UNSUCCESSFUL), quietly.
  auto it = breakpoints_.find(handle);
  if (it == breakpoints_.end()) {
    reply(reply_status(r.header, kStatusUnsuccessful));
    return;
  }
  ThreadRef t = thread_for(r.header.processor);
  auto st = target_.remove_breakpoint(t.pid, BreakpointType::Software, it->second, 1);
  breakpoints_.erase(it);
  reply(reply_status(r.header, st ? kStatusSuccess : kStatusUnsuccessful));
}

// DBGKD_BREAKPOINTEX {BreakPointCount, ContinueStatus} in the union, then
// BreakPointCount DBGKD_WRITE_BREAKPOINT64 (16 bytes each) as data; the
// reply carries them back with their handles.
void KdDispatcher::on_breakpoint_ex(const ManipulateRequest& r, bool write) {
  ByteReader u(ByteView(r.header.u.data(), r.header.u.size()));
  uint32_t count = u.u32(0);
  constexpr std::size_t kEntry = 0x10;
  if (count == 0 || count * kEntry > r.data.size()) {
    reply(reply_status(r.header, kStatusUnsuccessful));
    return;
  }
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Breakpoint); !st && write) {
    print("dbgstub: " + std::string(manipulate_api_name(r.api())) + " refused: " + st.error().message + "\n");
    reply(reply_status(r.header, kStatusAccessDenied));
    return;
  }
  Bytes data(r.data.begin(), r.data.begin() + static_cast<std::ptrdiff_t>(count * kEntry));
  ThreadRef t = thread_for(r.header.processor);
  bool all_ok = true;
  for (uint32_t i = 0; i < count; ++i) {
    ByteReader e(ByteView(data.data() + i * kEntry, kEntry));
    uint64_t addr = e.u64(0);
    uint32_t handle = e.u32(8);
    uint32_t out_handle = 0;
    if (write) {
      if (target_.insert_breakpoint(t.pid, BreakpointType::Software, addr, 1)) {
        out_handle = next_handle_++;
        breakpoints_[out_handle] = addr;
      } else {
        all_ok = false;
      }
    } else {
      auto it = breakpoints_.find(handle);
      if (it != breakpoints_.end()) {
        target_.remove_breakpoint(t.pid, BreakpointType::Software, it->second, 1);
        breakpoints_.erase(it);
      } else {
        all_ok = false;
      }
    }
    for (int k = 0; k < 4; ++k) data[i * kEntry + 8 + static_cast<std::size_t>(k)] = static_cast<uint8_t>(out_handle >> (8 * k));
  }
  ManipulateState64 h = r.header;
  h.return_status = all_ok ? kStatusSuccess : kStatusUnsuccessful;
  Bytes out = serialize_struct(h);
  out.insert(out.end(), data.begin(), data.end());
  reply(std::move(out));
}

void KdDispatcher::on_continue(const ManipulateRequest& r, bool step) {
  if (auto st = ModePolicy::allows(target_.mode(), Operation::Resume); !st) {
    // Continue has no reply: the next state change is its answer. The
    // target stays where it is, so that is the same stop again.
    print("dbgstub: " + std::string(manipulate_api_name(r.api())) + " refused: " + st.error().message +
          "; the target stays stopped\n");
    report_stop(kStatusBreakpoint);
    return;
  }
  if (r.api() == kDbgKdContinueApi2) apply_dr7(union_view<Continue2Body>(r.header).dr7);
  std::vector<ResumeAction> actions;
  ResumeAction a;
  a.kind = step ? ResumeAction::Kind::Step : ResumeAction::Kind::Continue;
  if (step) {
    a.thread = thread_for(current_cpu_);
    actions.push_back(a);
  } else {
    actions.push_back(a);
  }
  running_ = true;
  reported_ = false;
  if (auto st = target_.resume(actions); !st) {
    running_ = false;
    print("dbgstub: resume failed: " + st.error().message + "\n");
    report_stop(kStatusBreakpoint);
  }
}

void KdDispatcher::apply_dr7(uint64_t dr7) {
  std::set<HwBreak> want;
  for (int i = 0; i < 4; ++i) {
    if (!((dr7 >> (2 * i)) & 3)) continue;  // Ln/Gn off
    unsigned rw = static_cast<unsigned>((dr7 >> (16 + 4 * i)) & 3);
    unsigned len_bits = static_cast<unsigned>((dr7 >> (18 + 4 * i)) & 3);
    uint64_t len = len_bits == 0 ? 1 : len_bits == 1 ? 2 : len_bits == 2 ? 8 : 4;
    if (rw == 2) {
      print("dbgstub: I/O breakpoints (Dr7 R/W 10) are not supported; Dr" + std::to_string(i) + " ignored\n");
      continue;
    }
    BreakpointType type = rw == 0 ? BreakpointType::Hardware : rw == 1 ? BreakpointType::WriteWatch
                                                                      : BreakpointType::AccessWatch;
    want.insert(HwBreak{type, dr_[static_cast<std::size_t>(i)], rw == 0 ? 1 : len});
  }
  int pid = thread_for(current_cpu_).pid;
  for (auto it = hw_.begin(); it != hw_.end();) {
    if (want.count(*it)) {
      ++it;
      continue;
    }
    target_.remove_breakpoint(pid, it->type, it->addr, it->len);
    it = hw_.erase(it);
  }
  for (const auto& b : want) {
    if (hw_.count(b)) continue;
    Operation op = b.type == BreakpointType::Hardware ? Operation::Breakpoint : Operation::Watchpoint;
    Status st = ModePolicy::allows(target_.mode(), op);
    if (st) st = target_.insert_breakpoint(pid, b.type, b.addr, b.len);
    if (!st) {
      print("dbgstub: debug register breakpoint at " + rsp::hex_0x(b.addr) + " not set: " + st.error().message + "\n");
      continue;
    }
    hw_.insert(b);
  }
  dr7_ = dr7;
}

void KdDispatcher::on_switch_processor(const ManipulateRequest& r) {
  // NT answers by reporting the state change of that processor.
  uint16_t p = r.header.processor;
  if (p < cpus_.size()) current_cpu_ = p;
  else print("dbgstub: no processor " + std::to_string(p) + "\n");
  report_stop(kStatusBreakpoint);
}

void KdDispatcher::on_query_memory(const ManipulateRequest& r, const req::QueryMemory& q) {
  uint32_t space = q.address >= kKernelSpaceStart ? kQueryMemoryKernel : kQueryMemoryProcess;
  reply(reply_query_memory(r.header, kStatusSuccess, space, kQueryMemoryRead | kQueryMemoryWrite | kQueryMemoryExecute));
}

void KdDispatcher::on_read_msr(const ManipulateRequest& r, uint32_t msr) {
  const char* name = msr == 0xC0000080   ? "efer"
                     : msr == 0xC0000100 ? "fs_base"
                     : msr == 0xC0000101 ? "gs_base"
                     : msr == 0xC0000102 ? "k_gs_base"
                                         : nullptr;
  std::optional<uint64_t> v;
  if (name && regs_->has(name)) {
    if (auto g = registers_of(thread_for(r.header.processor))) v = regs_->get(*g, name);
  }
  if (!v) {
    reply(reply_read_msr(r.header, kStatusUnsuccessful, 0));
    return;
  }
  reply(reply_read_msr(r.header, kStatusSuccess, *v));
}

}  // namespace dbgstub

// VM target: queries, registers, memory and breakpoints, forwarded to the
// VM's gdbstub while the VM is halted.
#include "targets/vm/vm_target.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

#include "protocol/rsp/hex.h"
#include "targets/vm/vm_target_impl.h"

namespace dbgstub {
namespace {

namespace client = rsp::client;

constexpr const char* kNoKill =
    "ending a process is not supported for a VM yet; dbgstub never asks QEMU to kill: that would end the whole VM";

}  // namespace

// ---------------------------------------------------------------------------
// Impl helpers

Error VmTarget::Impl::not_attached() const {
  if (link == Link::Lost) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - silent_since);
    if (lost_to_timeout)
      return make_error(ETIMEDOUT, who() + " has not answered for " + std::to_string(secs.count()) +
                                       " s; requests to it fail until its debugger reconnects");
    return make_error(ENOTCONN, who() + ": the connection was lost " + std::to_string(secs.count()) +
                                    " s ago: " + lost_reason);
  }
  return make_error(ENOTCONN, "not connected to " + who());
}

// A link fails once: every request after fails at once with the reason,
// so a frozen VM costs its debugger one deadline, not one per request
// (gdb gives a reply up after 6 s).
void VmTarget::Impl::mark_lost(const Error& why) {
  if (link == Link::Attached) spdlog::error("{}: lost: {}", who(), why.message);
  conn.close();
  lost_to_timeout = why.code == ETIMEDOUT;
  silent_since = std::chrono::steady_clock::now() - (lost_to_timeout ? conn.timeout() : std::chrono::milliseconds(0));
  link = Link::Lost;
  lost_reason = why.message;
  running = false;
  g_thread.reset();
}

// Every request goes through here: a failure that closed the connection
// (timeout, hang-up, garbage) makes the whole link lost.
Result<std::string> VmTarget::Impl::request(std::string_view payload) {
  if (link != Link::Attached) return not_attached();
  auto r = conn.request(payload);
  if (!r && !conn.is_open()) mark_lost(r.error());
  return r;
}

Status VmTarget::Impl::request_ok(std::string_view payload) {
  auto r = request(payload);
  if (!r) return r.error();
  return client::parse_ok_reply(*r);
}

rsp::ThreadId VmTarget::Impl::wire(ThreadRef t) const {
  if (!offer.multiprocess) return rsp::ThreadId{0, t.tid};
  return rsp::ThreadId{t.pid, t.tid};
}

// Without multiprocess ids QEMU's vCPUs are threads of one process: pid 1.
ThreadRef VmTarget::Impl::from_wire(const rsp::ThreadId& id) const {
  int pid = offer.multiprocess && id.pid > 0 ? static_cast<int>(id.pid) : 1;
  return ThreadRef{pid, static_cast<int>(id.tid)};
}

// The stub answers register requests for the vCPU chosen with Hg. It picks
// the stopping vCPU itself at every stop, so the choice is forgotten at
// every resume and made again before the next register request.
Status VmTarget::Impl::select(ThreadRef t) {
  if (std::find(threads.begin(), threads.end(), t) == threads.end())
    return make_error(ESRCH, "no vCPU " + std::to_string(t.tid));
  if (g_thread == t) return ok_status();
  if (auto st = request_ok(client::set_thread_request('g', wire(t), offer.multiprocess)); !st) return st;
  g_thread = t;
  return ok_status();
}

Result<uint64_t> VmTarget::Impl::read_pc(ThreadRef t) {
  if (!pc) return make_error(ENOENT, "no pc register in the description");
  if (auto st = select(t); !st) return st.error();
  auto r = request(client::read_register_request(pc->regno));
  if (!r) return r.error();
  auto bytes = client::parse_register_reply(*r);
  if (!bytes) return bytes.error();
  return rsp::from_le_bytes(bytes->bytes);
}

void VmTarget::Impl::forget_session() {
  offer = StubOffer{};
  threads.clear();
  thread_names.clear();
  target_xml.clear();
  registers.clear();
  pc.reset();
  sp.reset();
  fp.reset();
  last_stop.reset();
  running = stepping = interrupt_sent = false;
  g_thread.reset();
  breakpoints.clear();
}

void VmTarget::Impl::report_hold() {
  if (!on_hold) return;
  VmHold h;
  h.attached = link == Link::Attached;
  for (const auto& b : breakpoints) h.breakpoints.push_back({b.type, b.addr, b.kind});
  on_hold(h);
}

// ---------------------------------------------------------------------------
// Target

VmTarget::VmTarget(asio::io_context& io, std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(io, std::move(host), port, timeout)) {}

VmTarget::~VmTarget() {
  // Never leave the VM halted behind a connection that is about to close.
  if (impl_->link == Impl::Link::Attached) impl_->release();
}

Status VmTarget::connect() { return impl_->attach(); }

void VmTarget::set_log_packets(bool on) { impl_->conn.set_log_packets(on); }

void VmTarget::set_name(std::string name) { impl_->name = std::move(name); }
void VmTarget::set_hold_observer(HoldObserver o) { impl_->on_hold = std::move(o); }

std::string VmTarget::describe() const {
  std::string s = (impl_->name.empty() ? "VM" : "VM " + impl_->name) + " through the gdbstub at " + impl_->where();
  if (impl_->link == Impl::Link::Attached)
    s += " (" + std::to_string(impl_->threads.size()) + " vCPU" + (impl_->threads.size() == 1 ? "" : "s") + ")";
  return s;
}

void VmTarget::set_stop_handler(StopHandler h) { impl_->on_stop = std::move(h); }

bool VmTarget::has_processes() const { return impl_->link == Impl::Link::Attached; }

// Connects again after a release, as the first queries would; a stub that
// does not answer is lost at once (mark_lost) and named in the error.
Status VmTarget::reachable() { return impl_->ensure_attached(); }

// The queries a new debugger makes first: they connect again after a
// release (failing quietly: an empty list is the answer then).
std::vector<ThreadRef> VmTarget::threads() const {
  if (auto st = impl_->ensure_attached(); !st) return {};
  return impl_->threads;
}

bool VmTarget::thread_alive(ThreadRef t) const {
  if (auto st = impl_->ensure_attached(); !st) return false;
  return std::find(impl_->threads.begin(), impl_->threads.end(), t) != impl_->threads.end();
}

std::string VmTarget::thread_name(ThreadRef t) const {
  auto it = impl_->thread_names.find({t.pid, t.tid});
  return it == impl_->thread_names.end() ? std::string() : it->second;
}

std::optional<StopEvent> VmTarget::last_stop() const {
  if (auto st = impl_->ensure_attached(); !st) return std::nullopt;
  return impl_->last_stop;
}

bool VmTarget::running() const { return impl_->running; }

bool VmTarget::unreachable() const { return impl_->link == Impl::Link::Lost || impl_->attach_failed; }

std::string VmTarget::target_xml() const {
  if (auto st = impl_->ensure_attached(); !st) return "";
  return impl_->target_xml;
}

std::vector<int> VmTarget::expedited_registers() const {
  std::vector<int> out;
  for (const auto* r : {&impl_->pc, &impl_->sp, &impl_->fp})
    if (*r) out.push_back((*r)->regno);
  return out;
}

Result<std::string> VmTarget::read_registers(ThreadRef t) {
  if (auto st = impl_->ensure_attached(); !st) return st.error();
  if (auto st = impl_->select(t); !st) return st.error();
  auto r = impl_->request(client::read_registers_request());
  if (!r) return r.error();
  auto regs = client::parse_register_reply(*r);
  if (!regs) return regs.error();
  // The Target interface carries bytes only: unavailable ones read as 0.
  if (regs->any_unavailable()) spdlog::debug("VM: some registers of vCPU {} are unavailable; shown as 0", t.tid);
  return std::move(regs->bytes);
}

Status VmTarget::write_registers(ThreadRef t, const std::string& data) {
  if (auto st = impl_->ensure_attached(); !st) return st;
  if (auto st = impl_->select(t); !st) return st;
  return impl_->request_ok(client::write_registers_request(data));
}

Result<std::string> VmTarget::read_register(ThreadRef t, int regno) {
  if (auto st = impl_->ensure_attached(); !st) return st.error();
  if (auto st = impl_->select(t); !st) return st.error();
  auto r = impl_->request(client::read_register_request(regno));
  if (!r) return r.error();
  auto reg = client::parse_register_reply(*r);
  if (!reg) return reg.error();
  return std::move(reg->bytes);
}

Status VmTarget::write_register(ThreadRef t, int regno, const std::string& value) {
  if (auto st = impl_->ensure_attached(); !st) return st;
  if (auto st = impl_->select(t); !st) return st;
  return impl_->request_ok(client::write_register_request(regno, value));
}

// Large reads are split to fit the stub's PacketSize (hex doubles them).
// A failure after some bytes were read returns those bytes, as a short
// read, which gdb handles.
Result<std::string> VmTarget::read_memory(int, uint64_t addr, std::size_t len) {
  if (auto st = impl_->ensure_attached(); !st) return st.error();
  const uint64_t chunk = std::max<uint64_t>((impl_->offer.packet_size - 16) / 2, 1);
  std::string out;
  while (out.size() < len) {
    uint64_t n = std::min<uint64_t>(chunk, len - out.size());
    auto r = impl_->request(client::read_memory_request(addr + out.size(), n));
    Result<std::string> bytes = r ? client::parse_memory_reply(*r, n) : Result<std::string>(r.error());
    if (!bytes || bytes->empty()) {
      if (!out.empty()) break;
      if (!bytes) return bytes.error();
      return make_error(EIO, "the gdbstub returned no memory");
    }
    out += *bytes;
  }
  return out;
}

Status VmTarget::write_memory(int, uint64_t addr, const std::string& data) {
  if (auto st = impl_->ensure_attached(); !st) return st;
  // "M<addr>,<len>:" and the hex must fit the stub's packet.
  const uint64_t chunk = std::max<uint64_t>((impl_->offer.packet_size - 48) / 2, 1);
  for (std::size_t done = 0; done < data.size();) {
    std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(chunk, data.size() - done));
    if (auto st = impl_->request_ok(client::write_memory_request(addr + done, std::string_view(data).substr(done, n)));
        !st)
      return st;
    done += n;
  }
  return ok_status();
}

Status VmTarget::insert_breakpoint(int, BreakpointType type, uint64_t addr, uint64_t kind) {
  if (auto st = impl_->ensure_attached(); !st) return st;
  auto st = impl_->request_ok(client::breakpoint_request(true, static_cast<int>(type), addr, kind));
  if (!st) return st;
  impl_->breakpoints.insert({type, addr, kind});
  impl_->report_hold();
  return ok_status();
}

Status VmTarget::remove_breakpoint(int, BreakpointType type, uint64_t addr, uint64_t kind) {
  if (auto st = impl_->ensure_attached(); !st) return st;
  impl_->breakpoints.erase({type, addr, kind});
  auto st = impl_->request_ok(client::breakpoint_request(false, static_cast<int>(type), addr, kind));
  impl_->report_hold();
  return st;
}

Status VmTarget::kill_process(int, const KillOptions&) { return make_error(EPERM, kNoKill); }

// Nothing is attached per process: the whole VM is let go when the
// debugger leaves (release_all).
Status VmTarget::detach_process(int) { return ok_status(); }

void VmTarget::release_all() { impl_->release(); }

}  // namespace dbgstub

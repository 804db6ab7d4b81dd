// VM target: running and stopping the VM. A resume's reply is the next
// stop, which comes whenever the VM stops: it is awaited asynchronously
// and handed to the stop handler from the loop.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

#include "protocol/rsp/hex.h"
#include "protocol/rsp/signals.h"
#include "targets/vm/vm_target_impl.h"

namespace dbgstub {
namespace {

namespace client = rsp::client;

// The stop reply after an interrupt on release: a few console packets may
// come first, never many.
constexpr int kMaxPacketsBeforeStop = 16;

}  // namespace

// ---------------------------------------------------------------------------
// Resume

Result<std::string> VmTarget::Impl::resume_request(const std::vector<ResumeAction>& actions) {
  std::vector<rsp::VContAction> wire_actions;
  bool have_default = false;
  for (const auto& a : actions) {
    if (a.kind == ResumeAction::Kind::Stop) continue;  // all-stop: everything else is stopped already
    rsp::VContAction w;
    bool step = a.kind == ResumeAction::Kind::Step;
    int sig = a.signal ? rsp::gdb_signal_from_host(a.signal) : 0;
    w.action = step ? (sig ? 'S' : 's') : (sig ? 'C' : 'c');
    w.signal = sig;
    bool all = !a.thread || (a.thread->tid <= 0 && a.thread->pid <= 0) || (a.thread->tid < 0 && !offer.multiprocess);
    if (all) {
      if (have_default) continue;  // the first action for "the rest" wins
      have_default = true;
    } else {
      ThreadRef t = *a.thread;
      if (t.pid <= 0) {
        // "any process": the one the vCPU belongs to.
        for (const auto& known : threads)
          if (known.tid == t.tid) t.pid = known.pid;
        if (t.pid <= 0) t.pid = 1;
      }
      w.thread = wire(t);
    }
    wire_actions.push_back(w);
  }
  if (wire_actions.empty()) return make_error(EINVAL, "nothing to resume");
  if (offer.vcont) {
    // The protocol wants the default action last.
    std::stable_partition(wire_actions.begin(), wire_actions.end(), [](const auto& w) { return w.thread.has_value(); });
    return client::vcont_request(wire_actions, offer.multiprocess);
  }
  // Without vCont: one action, for the Hc thread (or all of them).
  const auto& first = wire_actions.front();
  rsp::ThreadId target = first.thread ? *first.thread : rsp::ThreadId{offer.multiprocess ? -1 : 0, -1};
  if (auto st = request_ok(client::set_thread_request('c', target, offer.multiprocess)); !st) return st.error();
  return client::resume_request(first.action == 's' || first.action == 'S', first.signal);
}

Status VmTarget::resume(const std::vector<ResumeAction>& actions) {
  Impl& m = *impl_;
  if (auto st = m.ensure_attached(); !st) return st;
  if (m.running) return make_error(EBUSY, "the VM is already running");
  // "c ADDR" (legacy): move the pc first.
  for (const auto& a : actions) {
    if (!a.addr) continue;
    if (!m.pc) return make_error(EOPNOTSUPP, "resuming at an address needs a pc register");
    ThreadRef t = a.thread && a.thread->tid > 0 ? *a.thread : (m.last_stop ? m.last_stop->thread : m.threads.front());
    if (t.pid <= 0) t.pid = 1;
    if (auto st = write_register(t, m.pc->regno, rsp::le_bytes(*a.addr, static_cast<std::size_t>(m.pc->bitsize / 8)));
        !st)
      return st;
  }
  auto payload = m.resume_request(actions);
  if (!payload) return payload.error();
  if (auto st = m.conn.send(*payload); !st) {
    m.mark_lost(st.error());
    return st;
  }
  m.running = true;
  m.stepping = false;
  for (const auto& a : actions)
    if (a.kind == ResumeAction::Kind::Step) m.stepping = true;
  m.interrupt_sent = false;
  m.g_thread.reset();
  m.wait_for_stop();
  return ok_status();
}

Status VmTarget::interrupt() {
  Impl& m = *impl_;
  if (m.link != Impl::Link::Attached || !m.running) return ok_status();  // nothing runs: nothing to stop
  if (auto st = m.conn.send_interrupt(); !st) {
    // The wait for the stop sees the closed connection and reports it.
    spdlog::warn("VM: interrupt: {}", st.error().message);
    return st;
  }
  m.interrupt_sent = true;
  return ok_status();
}

// ---------------------------------------------------------------------------
// Stops

void VmTarget::Impl::wait_for_stop() {
  conn.async_next_packet([this](Result<std::string> p) { on_stop_packet(std::move(p)); });
}

void VmTarget::Impl::on_stop_packet(Result<std::string> packet) {
  StopEvent ev;
  ev.thread = last_stop ? last_stop->thread : (threads.empty() ? ThreadRef{1, 1} : threads.front());
  if (!packet) {
    // The VM may even run on; we can't tell. The debugger learns that its
    // target is gone ("terminated by SIGHUP": the line hung up).
    mark_lost(packet.error());
    ev.kind = StopEvent::Kind::Terminated;
    ev.signal = SIGHUP;
  } else if (client::is_console_output(*packet)) {
    if (auto text = rsp::from_hex(std::string_view(*packet).substr(1))) spdlog::info("VM: stub says: {}", *text);
    wait_for_stop();
    return;
  } else if (auto reply = client::parse_stop_reply(*packet); !reply) {
    // Something stopped the VM, but the stub's words make no sense: report
    // a plain trap so the debugger can look for itself.
    spdlog::warn("VM: bad stop reply: {}", reply.error().message);
    running = false;
    ev.signal = SIGTRAP;
  } else {
    running = false;
    ev = to_event(*reply);
    if (ev.kind != StopEvent::Kind::Signal) {
      // QEMU is exiting (guest shutdown, QMP quit): not an error.
      spdlog::info("VM: the VM has ended (the stub replied {})", *packet);
      conn.close();
      link = Link::Lost;
      lost_reason = "the VM has ended";
      lost_to_timeout = false;
      silent_since = std::chrono::steady_clock::now();
    }
  }
  running = false;
  last_stop = ev;
  if (on_stop) on_stop(ev);
}

// A stop reply in the target's terms. A breakpoint stop is recognised by
// the pc (QEMU leaves it at the breakpoint and says only "T05").
StopEvent VmTarget::Impl::to_event(const client::StopReply& reply) {
  StopEvent ev;
  if (reply.kind != client::StopReply::Kind::Signal) {
    ev.kind = reply.kind == client::StopReply::Kind::Exited ? StopEvent::Kind::Exited : StopEvent::Kind::Terminated;
    ev.exit_code = reply.exit_code;
    ev.signal = rsp::host_signal_from_gdb(reply.signal);
    ev.thread = ThreadRef{reply.process && offer.multiprocess ? static_cast<int>(*reply.process) : 1, 0};
    return ev;
  }
  ev.signal = rsp::host_signal_from_gdb(reply.signal);
  ev.thread = reply.thread && reply.thread->tid > 0 ? from_wire(*reply.thread)
                                                    : (threads.empty() ? ThreadRef{1, 1} : threads.front());
  using R = client::StopReply::Reason;
  switch (reply.reason) {
    case R::Watch: ev.reason = StopEvent::Reason::Watch; ev.data_addr = reply.watch_addr; return ev;
    case R::ReadWatch: ev.reason = StopEvent::Reason::ReadWatch; ev.data_addr = reply.watch_addr; return ev;
    case R::AccessWatch: ev.reason = StopEvent::Reason::AccessWatch; ev.data_addr = reply.watch_addr; return ev;
    case R::SwBreak: ev.reason = StopEvent::Reason::SwBreak; return ev;
    case R::HwBreak: ev.reason = StopEvent::Reason::HwBreak; return ev;
    case R::None: break;
  }
  if (ev.signal == SIGINT && interrupt_sent) {
    ev.reason = StopEvent::Reason::Interrupt;
  } else if (ev.signal == SIGTRAP && stepping) {
    // A step that lands on a breakpoint has not hit it yet.
    ev.reason = StopEvent::Reason::Step;
  } else if (ev.signal == SIGTRAP && !breakpoints.empty() && link == Link::Attached) {
    if (auto pc_value = read_pc(ev.thread)) {
      for (const auto& b : breakpoints) {
        if (b.addr != *pc_value) continue;
        if (b.type == BreakpointType::Software) ev.reason = StopEvent::Reason::SwBreak;
        if (b.type == BreakpointType::Hardware && ev.reason == StopEvent::Reason::None)
          ev.reason = StopEvent::Reason::HwBreak;
      }
    }
  }
  return ev;
}

// ---------------------------------------------------------------------------
// Release

// Stops a running VM and waits for its stop reply (synchronously: the
// debugger is gone and nothing else waits for this stop).
Status VmTarget::Impl::stop_running_vm() {
  conn.cancel_async();
  if (auto st = conn.send_interrupt(); !st) return st;
  for (int i = 0; i < kMaxPacketsBeforeStop; ++i) {
    auto p = conn.next_packet();
    if (!p) return p.error();
    if (client::is_console_output(*p)) continue;
    auto reply = client::parse_stop_reply(*p);
    if (!reply) return reply.error();
    running = false;
    if (reply->kind != client::StopReply::Kind::Signal) return make_error(ESRCH, "the VM has ended");
    return ok_status();
  }
  return make_error(EPROTO, "no stop reply after the interrupt");
}

// The debugger has left: take out what we put in, then detach so the VM
// runs on. Never 'k' or vKill: either would end the whole VM.
void VmTarget::Impl::release() {
  if (link != Link::Attached) {
    // Lost or already released: the next debugger connects afresh.
    conn.close();
    link = Link::Released;
    forget_session();
    return;
  }
  bool ok = true;
  if (running) {
    if (auto st = stop_running_vm(); !st) {
      spdlog::warn("VM: stopping the VM to release it: {}", st.error().message);
      ok = false;
    }
  }
  if (ok) {
    for (const auto& b : breakpoints) {
      auto st = request_ok(client::breakpoint_request(false, static_cast<int>(b.type), b.addr, b.kind));
      if (!st) spdlog::warn("VM: removing the breakpoint at {:#x}: {}", b.addr, st.error().message);
    }
    // One detach per process QEMU reports (with multiprocess ids every
    // process must be detached before it resumes the VM).
    std::vector<std::optional<int64_t>> pids;
    if (!offer.multiprocess) pids.emplace_back();
    for (const auto& t : threads)
      if (offer.multiprocess && std::find(pids.begin(), pids.end(), std::optional<int64_t>(t.pid)) == pids.end())
        pids.emplace_back(t.pid);
    for (const auto& pid : pids) {
      if (link != Link::Attached) break;
      if (auto st = request_ok(client::detach_request(pid)); !st)
        spdlog::warn("VM: detaching from the gdbstub: {}", st.error().message);
    }
    spdlog::info("VM: detached from the gdbstub at {}; the VM runs on", where());
  }
  conn.close();
  link = Link::Released;
  forget_session();
  // Held no more only if the detach went through: otherwise the VM may be
  // halted still, and a restart must see to it.
  if (ok) report_hold();
}

}  // namespace dbgstub

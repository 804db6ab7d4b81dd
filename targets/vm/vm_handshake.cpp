// Connecting to the VM's gdbstub and learning what it offers: features,
// vCPUs (threads), the register description.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>

#include "protocol/rsp/hex.h"
#include "targets/vm/vm_target_impl.h"

namespace dbgstub {
namespace {

namespace client = rsp::client;

// What we ask for, as gdb does: pPID.TID thread ids, breakpoint kinds in
// stop replies, and the x86 register set.
const std::vector<std::string> kOurFeatures = {"multiprocess+", "swbreak+", "hwbreak+", "vContSupported+",
                                               "xmlRegisters=i386"};
// Bounds on what a broken stub can make us do.
constexpr std::size_t kMaxDocument = 1 << 20;
constexpr int kMaxThreadListReplies = 4096;

}  // namespace

Status VmTarget::Impl::ensure_attached() {
  switch (link) {
    case Link::Attached: return ok_status();
    case Link::Lost: return not_attached();
    case Link::Released: break;
  }
  // A new debugger after the last one left: connect again.
  spdlog::info("VM: connecting to the gdbstub at {} again", where());
  return attach();
}

Status VmTarget::Impl::attach() {
  forget_session();
  attach_failed = true;  // until the handshake is done
  if (auto st = conn.connect(host, port); !st)
    return make_error(st.error().code, "cannot connect to the VM's gdbstub at " + where() + ": " + st.error().message);
  if (auto st = handshake(); !st) {
    conn.close();
    forget_session();
    Error e = make_error(st.error().code, "the VM's gdbstub at " + where() + ": " + st.error().message);
    // A stub that accepts but does not answer (QEMU stopped or stuck):
    // lost until this debugger leaves, not asked again per request.
    if (e.code == ETIMEDOUT) {
      spdlog::error("{}: connected but not answering: {}", who(), e.message);
      mark_lost(e);
      return not_attached();
    }
    return e;
  }
  link = Link::Attached;
  attach_failed = false;
  lost_reason.clear();
  report_hold();
  spdlog::info("VM: attached to the gdbstub at {}: {} vCPU{}, {} registers; it offered '{}'", where(),
               threads.size(), threads.size() == 1 ? "" : "s", registers.size(), offer.supported_reply);
  return ok_status();
}

Status VmTarget::Impl::handshake() {
  auto sup = conn.request(client::supported_request(kOurFeatures));
  // QEMU stops a running VM when a client connects and says so at once
  // ("T02thread:..."), before it reads our first request: that stop is no
  // reply to it. ('?' asks for the stop again below.)
  for (int i = 0; i < 4 && sup && client::parse_stop_reply(*sup).ok(); ++i) {
    spdlog::debug("VM: the stub reported a stop on connecting: {}", *sup);
    sup = conn.next_packet();
  }
  if (!sup) return sup.error();
  auto features = client::parse_supported_reply(*sup);
  if (!features) return features.error();
  offer = StubOffer{};
  offer.supported_reply = *sup;
  offer.multiprocess = features->get("multiprocess") == "+";
  if (auto size = features->get("PacketSize")) {
    auto v = rsp::parse_hex_u64(*size);
    // Too small to carry a register block is as broken as absent.
    if (v && *v >= 0x100) offer.packet_size = std::min<uint64_t>(*v, 1 << 20);
  }
  if (features->get("QStartNoAckMode") == "+") {
    auto r = conn.request("QStartNoAckMode");
    if (!r) return r.error();
    if (*r == "OK") {
      conn.stop_acks();
      offer.no_ack = true;
    }
  }

  auto why = conn.request("?");
  if (!why) return why.error();
  auto stop = client::parse_stop_reply(*why);
  if (!stop) return make_error(stop.error().code, "halt reason: " + stop.error().message);
  if (stop->kind != client::StopReply::Kind::Signal) return make_error(ESRCH, "the VM has exited");

  auto vcont = conn.request("vCont?");
  if (!vcont) return vcont.error();
  // "vCont;c;C;s;S": QEMU offers these; without c and s we use c/s and Hc.
  std::string actions = *vcont + ";";
  offer.vcont = vcont->starts_with("vCont;") && actions.find(";c;") != std::string::npos &&
                actions.find(";s;") != std::string::npos;

  if (auto st = read_threads(); !st) return st;

  if (features->get("qXfer:features:read") != "+")
    return make_error(EOPNOTSUPP, "it offers no register description (qXfer:features:read)");
  auto top = read_document("target.xml");
  if (!top) return top.error();
  auto doc = vm::inline_includes(*top, [this](const std::string& annex) { return read_document(annex); });
  if (!doc) return doc.error();
  target_xml = std::move(*doc);
  registers = vm::parse_registers(target_xml);
  pc = vm::find_register(registers, {"rip", "eip", "pc"});
  sp = vm::find_register(registers, {"rsp", "esp", "sp"});
  fp = vm::find_register(registers, {"rbp", "ebp", "fp"});
  if (!pc) spdlog::warn("VM: the register description names no pc (rip/eip/pc): breakpoint stops can't be told apart");

  StopEvent ev = to_event(*stop);
  ev.reason = StopEvent::Reason::Start;
  last_stop = ev;
  return ok_status();
}

Status VmTarget::Impl::read_threads() {
  threads.clear();
  thread_names.clear();
  std::string q = "qfThreadInfo";
  for (int i = 0; i < kMaxThreadListReplies; ++i) {
    auto r = conn.request(q);
    if (!r) return r.error();
    auto chunk = client::parse_thread_list_reply(*r);
    if (!chunk) return make_error(chunk.error().code, "thread list: " + chunk.error().message);
    for (const auto& id : chunk->threads) {
      ThreadRef t = from_wire(id);
      if (std::find(threads.begin(), threads.end(), t) == threads.end()) threads.push_back(t);
    }
    if (chunk->last) break;
    q = "qsThreadInfo";
  }
  if (threads.empty()) return make_error(ESRCH, "it lists no vCPUs");
  // QEMU says "CPU#0 [halted ]": the name without the state, which would
  // be stale by the next resume.
  for (const auto& t : threads) {
    auto r = conn.request(client::thread_extra_info_request(wire(t), offer.multiprocess));
    if (!r) return r.error();
    auto text = client::parse_hex_text_reply(*r);
    if (!text) continue;  // no names: not an error
    std::string name = text->substr(0, text->find(" ["));
    if (name.size() > 64) name.resize(64);
    thread_names[{t.pid, t.tid}] = name;
  }
  return ok_status();
}

Result<std::string> VmTarget::Impl::read_document(const std::string& annex) {
  std::string doc;
  // Our request and the stub's reply ("m" + data, escaped) must both fit.
  uint64_t chunk = offer.packet_size > 64 ? offer.packet_size - 32 : offer.packet_size;
  while (true) {
    auto r = conn.request(client::xfer_read_request("features", annex, doc.size(), chunk));
    if (!r) return r.error();
    auto part = client::parse_xfer_reply(*r);
    if (!part) return make_error(part.error().code, annex + ": " + part.error().message);
    doc += part->data;
    if (doc.size() > kMaxDocument) return make_error(E2BIG, annex + ": document too large");
    if (part->last) return doc;
    if (part->data.empty()) return make_error(EPROTO, annex + ": the stub sent an empty chunk and more to come");
  }
}

}  // namespace dbgstub

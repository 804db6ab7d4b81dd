// libFuzzer target: rsp::parse_request on one arbitrary payload (as the
// Framer would deliver it: any bytes, NULs included), then reply builders
// fed with whatever the request carried, as the dispatcher would build
// them from request fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/overloaded.h"
#include "protocol/rsp/framing.h"
#include "protocol/rsp/hex.h"
#include "protocol/rsp/reply.h"
#include "protocol/rsp/request.h"
#include "protocol/rsp/signals.h"

namespace rsp = dbgstub::rsp;
using dbgstub::Overloaded;

namespace {

// A stand-in document (the dispatcher's target.xml, auxv, ...).
constexpr std::string_view kDocument =
    "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
    "<target><architecture>i386:x86-64</architecture></target>\n";

// Replies must fit what the framer would let through, give or take the
// escaping: a builder that blows up a payload is a bug.
void check_bounded(const std::string& reply, std::size_t input_size) {
  if (reply.size() > 64 * input_size + 4096) __builtin_trap();
  (void)rsp::frame_packet(reply);
}

void exercise(const rsp::Request& req, std::string_view payload) {
  std::size_t n = payload.size();
  rsp::StopReply stop;
  stop.signal = rsp::gdb_signal_from_host(static_cast<int>(n % 70));
  stop.thread = rsp::ThreadId{static_cast<int64_t>(n), static_cast<int64_t>(n) + 1};
  std::vector<rsp::ThreadId> threads;

  std::visit(
      Overloaded{
          [&](const rsp::XferRead& x) {
            check_bounded(rsp::build_xfer_chunk(kDocument, x.offset, x.length), n);
            check_bounded(rsp::build_xfer_chunk(x.annex, x.offset, x.length), n);
            check_bounded(rsp::build_xfer_chunk(payload, x.offset, x.length), n);
          },
          [&](const rsp::ReadMemory& m) {
            check_bounded(rsp::build_xfer_chunk(payload, m.addr, m.length), n);
            stop.registers.emplace_back(16, rsp::le_bytes(m.addr, 8));
            stop.extras.emplace_back("watch", rsp::hex_u64(m.addr));
          },
          [&](const rsp::WriteMemory& w) {
            stop.registers.emplace_back(static_cast<int>(w.addr & 0xff), w.data);
            check_bounded(rsp::build_file_reply(static_cast<int64_t>(w.data.size()), 0, w.data, true), n);
          },
          [&](const rsp::ReadRegister& r) {
            stop.registers.emplace_back(static_cast<int>(r.regno & 0xffff), std::string(8, '\x55'));
            if (r.thread) stop.thread = *r.thread;
          },
          [&](const rsp::WriteRegister& w) {
            stop.registers.emplace_back(static_cast<int>(w.regno & 0xffff), w.value);
            if (w.thread) stop.thread = *w.thread;
          },
          [&](const rsp::WriteAllRegisters& w) {
            stop.registers.emplace_back(0, w.data);
            if (w.thread) stop.thread = *w.thread;
          },
          [&](const rsp::Resume& r) {
            stop.signal = r.signal;
            if (r.addr) stop.registers.emplace_back(16, rsp::le_bytes(*r.addr, 8));
            (void)rsp::host_signal_from_gdb(r.signal);
          },
          [&](const rsp::VCont& v) {
            for (auto& a : v.actions) {
              if (a.thread) threads.push_back(*a.thread);
              (void)rsp::host_signal_from_gdb(a.signal);
            }
          },
          [&](const rsp::SetThread& h) { threads.push_back(h.thread); stop.thread = h.thread; },
          [&](const rsp::ThreadAlive& t) { threads.push_back(t.thread); },
          [&](const rsp::QueryThreadStopInfo& t) { stop.thread = t.thread; },
          [&](const rsp::QSupported& q) {
            check_bounded(rsp::build_supported(q.features), n);
            for (auto& f : q.features) stop.extras.emplace_back(f, "");
          },
          [&](const rsp::MonitorCommand& m) { check_bounded(rsp::reply_console_output(m.command), n); },
          [&](const rsp::Breakpoint& b) {
            stop.extras.emplace_back(b.insert ? "swbreak" : "hwbreak", "");
            stop.extras.emplace_back("watch", rsp::hex_u64(b.addr));
          },
          [&](const rsp::PassSignals& s) {
            for (int sig : s.signals) stop.signal = rsp::host_signal_from_gdb(sig);
          },
          [&](const rsp::QueryProcessInfo& q) {
            if (q.pid) {
              check_bounded(rsp::build_exit_reply(static_cast<int>(*q.pid & 0x1ff), q.pid), n);
              check_bounded(rsp::build_signal_exit_reply(static_cast<int>(*q.pid & 0x1ff), q.pid), n);
            }
          },
          [&](const rsp::HostFile& f) {
            check_bounded(rsp::build_file_reply(f.fd, rsp::fileio_errno(static_cast<int>(f.flags & 0xff))), n);
            check_bounded(rsp::build_file_reply(-1, rsp::fileio_errno(static_cast<int>(f.mode & 0xff))), n);
            check_bounded(rsp::build_file_reply(static_cast<int64_t>(f.path.size()), 0, f.path, true), n);
          },
          [&](const rsp::JsonRequest& j) {
            check_bounded(rsp::build_key_values({{j.name, rsp::to_hex(j.json)}}), n);
          },
          [&](const rsp::Unsupported& u) {
            check_bounded(rsp::reply_error_message(static_cast<int>(n), u.name, true), n);
          },
          [&](const auto&) {},
      },
      req);

  threads.push_back(stop.thread);
  for (bool multiprocess : {false, true}) {
    check_bounded(rsp::build_stop_reply(stop, multiprocess), n);
    check_bounded(rsp::build_thread_list(threads, multiprocess), n);
    for (auto& t : threads) {
      // A formatted thread id must parse back to the same id.
      std::string s = rsp::format_thread_id(t, multiprocess);
      auto back = rsp::parse_thread_id(s);
      if (!back) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  auto req = rsp::parse_request(payload);
  if (!req) {
    // Errors carry the packet name into logs and "E.message" replies.
    check_bounded(rsp::reply_error_message(req.error().code, req.error().message, true), size);
    check_bounded(rsp::reply_error(req.error().code), size);
    return 0;
  }
  exercise(*req, payload);
  return 0;
}

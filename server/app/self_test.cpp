#include "server/app/self_test.h"

#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <string_view>
#include <string>
#include <vector>

#include "protocol/kd/framing.h"
#include "protocol/kd/structs.h"
#include "protocol/rsp/framing.h"
#include "targets/process/child_events.h"
#include "targets/process/process_target.h"

namespace dbgstub {
namespace {

std::string every_byte() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s + s;  // runs, for the run-length encoding
}

std::string rsp_round_trip() {
  std::string payload = every_byte();
  rsp::Framer framer(payload.size() * 2);
  std::vector<rsp::FrameEvent> events;
  std::string framed = rsp::frame_packet(payload);
  // Fed in two pieces, split inside the packet, as TCP may deliver it.
  framer.feed(std::string_view(framed).substr(0, 100), events);
  framer.feed(std::string_view(framed).substr(100), events);
  if (events.size() != 1 || events[0].kind != rsp::FrameEvent::Kind::Packet)
    return "an RSP packet of every byte value did not come back as one packet";
  if (events[0].payload != payload) return "an RSP packet of every byte value came back changed";
  return "";
}

std::string kd_round_trip() {
  std::string text = every_byte();
  kd::Bytes payload(text.begin(), text.end());
  auto framed = kd::frame_data_packet(kd::kPacketTypeKdStateManipulate, 0x80800000, payload);
  if (!framed) return "a KD packet could not be framed: " + framed.error().message;
  kd::KdFramer framer;
  std::vector<kd::KdEvent> events;
  framer.feed(kd::ByteView(framed->data(), framed->size()), events);
  auto* d = events.size() == 1 ? std::get_if<kd::DataPacket>(&events[0]) : nullptr;
  if (!d) return "a KD packet of every byte value did not come back as one data packet";
  if (d->payload != payload || d->id != 0x80800000) return "a KD packet of every byte value came back changed";
  return "";
}

// Runs `io` until `done` or 10 s; false on the timeout.
bool run_until(asio::io_context& io, const bool& done) {
  bool late = false;
  asio::steady_timer deadline(io, std::chrono::seconds(10));
  deadline.async_wait([&](const asio::error_code& ec) { late = !ec; });
  while (!done && !late && io.run_one()) {
  }
  return done;
}

std::string ptrace_program() {
  asio::io_context io;
  ChildEvents child_events(io);
  ProcessTarget target(io, child_events);
  std::vector<StopEvent> stops;
  bool stopped = false;
  target.set_stop_handler([&](const StopEvent& ev) {
    stops.push_back(ev);
    stopped = true;
  });
  auto next_stop = [&]() -> const StopEvent* {
    stopped = false;
    return run_until(io, stopped) ? &stops.back() : nullptr;
  };
  LaunchSpec spec;
  spec.argv = {"/proc/self/exe", "--version"};  // this program: always there
  spec.redirect_stdio = true;
  // In a sanitizer build the program is sanitized too, and LeakSanitizer
  // cannot work under ptrace: it would fail the exit.
  std::string asan = "ASAN_OPTIONS=detect_leaks=0";
  for (char** e = environ; e && *e; ++e) {
    std::string_view var(*e);
    if (var.rfind("ASAN_OPTIONS=", 0) == 0)
      asan = std::string(var) + ":detect_leaks=0";
    else
      spec.env.emplace_back(var);
  }
  spec.env.push_back(asan);
  if (auto st = target.launch(spec); !st) return "cannot start a program under ptrace: " + st.error().message;
  const StopEvent* ev = next_stop();
  if (!ev || ev->kind != StopEvent::Kind::Signal)
    return "a program started under ptrace did not stop at its start";
  ThreadRef t = ev->thread;
  auto regs = target.read_registers(t);
  if (!regs || regs->empty()) return "the registers of a stopped program could not be read";
  ResumeAction step;
  step.kind = ResumeAction::Kind::Step;
  step.thread = t;
  if (auto st = target.resume({step}); !st) return "cannot single-step: " + st.error().message;
  ev = next_stop();
  if (!ev || ev->kind != StopEvent::Kind::Signal || ev->reason != StopEvent::Reason::Step)
    return "a single-step did not stop as a step";
  if (auto st = target.resume({ResumeAction{}}); !st) return "cannot resume: " + st.error().message;
  ev = next_stop();
  if (!ev || ev->kind != StopEvent::Kind::Exited || ev->exit_code != 0)
    return "a resumed program did not run to a normal exit";
  return "";
}

}  // namespace

int run_checks(std::ostream& out, const std::vector<SelfCheck>& checks) {
  int failed = 0;
  for (auto& check : checks) {
    out << "Running selftest " << check.name << "." << std::endl;
    std::string problem = check.run();
    if (!problem.empty()) {
      out << "Self test failed: " << problem << std::endl;
      ++failed;
    }
  }
  out << "Ran " << checks.size() << " unit tests, " << failed << " failed" << std::endl;
  return failed ? 1 : 0;
}

int run_self_tests(std::ostream& out) {
  return run_checks(out, {{"rsp_framing", rsp_round_trip},
                          {"kd_framing", kd_round_trip},
                          {"ptrace_program", ptrace_program}});
}

}  // namespace dbgstub

// The VM target against a scripted stand-in for QEMU's gdbstub (a thread
// with a loopback socket): handshake, register description, splitting of
// large reads, asynchronous stops, interrupt, release (breakpoints out,
// 'D', never 'k'), reconnecting, and the failures: no answer, hang-up,
// nobody listening. The real QEMU is in tests/integration/test_vm_target.py.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "protocol/rsp/framing.h"
#include "protocol/rsp/hex.h"
#include "targets/vm/target_description.h"
#include "targets/vm/vm_target.h"

using namespace dbgstub;
using namespace std::chrono_literals;

namespace {

const char* kTargetXml =
    "<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\"><target>"
    "<architecture>i386:x86-64</architecture><xi:include href=\"core.xml\"/></target>";
const char* kCoreXml =
    "<?xml version=\"1.0\"?>\n<!-- notice -->\n<!DOCTYPE feature SYSTEM \"gdb-target.dtd\">\n"
    "<feature name=\"org.gnu.gdb.i386.core\"><reg name=\"rax\" bitsize=\"64\" regnum=\"0\"/>"
    "<reg name=\"rbp\" bitsize=\"64\" regnum=\"6\"/><reg name=\"rsp\" bitsize=\"64\"/>"
    "<reg name=\"rip\" bitsize=\"64\" regnum=\"16\"/><reg name=\"eflags\" bitsize=\"32\"/></feature>";

// What a FakeStub responder returns to leave a packet unanswered.
const std::string kNoReply = "\x01";

// A stand-in for QEMU's gdbstub: acks and answers packets with `respond`
// (nullopt: no answer), one client at a time, records what it received.
class FakeStub {
 public:
  using Responder = std::function<std::optional<std::string>(const std::string&)>;

  explicit FakeStub(Responder extra = nullptr) : extra_(std::move(extra)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_fd_, 4) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeStub() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> packets() {
    std::lock_guard<std::mutex> g(mu_);
    return packets_;
  }
  int connections() const { return connections_; }
  // Sends a packet unasked (a stop reply); waits for a client first.
  void push(const std::string& payload) {
    for (int i = 0; i < 200 && client_fd_ < 0; ++i) std::this_thread::sleep_for(5ms);
    std::lock_guard<std::mutex> g(mu_);
    std::string f = rsp::frame_packet(payload);
    (void)!::write(client_fd_, f.data(), f.size());
  }
  void hang_up() { hang_up_ = true; }
  // Sent on every new connection before anything is read, as QEMU reports
  // the stop of a running VM that a client's connecting caused.
  void set_greeting(std::string g) { greeting_ = std::move(g); }
  int acks() const { return acks_; }
  // Whether a packet starting with `prefix` arrived (waiting a little for
  // the stub's thread to read it).
  bool saw(const std::string& prefix) {
    for (int i = 0; i < 100; ++i) {
      for (const auto& p : packets())
        if (p.rfind(prefix, 0) == 0) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

 private:
  std::optional<std::string> respond(const std::string& p) {
    if (extra_)
      if (auto r = extra_(p)) return *r == kNoReply ? std::nullopt : r;
    if (p.rfind("qSupported", 0) == 0) return "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+";
    if (p == "?") return "T05thread:p01.01;";
    if (p == "vCont?") return "vCont;c;C;s;S";
    if (p == "qfThreadInfo") return "mp01.01,p01.02";
    if (p == "qsThreadInfo") return "l";
    if (p.rfind("qThreadExtraInfo,p1.", 0) == 0) return rsp::to_hex("CPU#" + std::to_string(p.back() - '1') + " [halted ]");
    if (p.rfind("qXfer:features:read:target.xml:", 0) == 0) return std::string("l") + kTargetXml;
    if (p.rfind("qXfer:features:read:core.xml:", 0) == 0) return std::string("l") + kCoreXml;
    if (p.rfind("Hg", 0) == 0 || p.rfind("Z", 0) == 0 || p.rfind("z", 0) == 0 || p.rfind("D", 0) == 0) return "OK";
    if (p == "p10") return "f0ff000000000000";
    if (p == "g") return "0100000000000000xxxxxxxxxxxxxxxx";
    if (p[0] == 'm') {
      auto comma = p.find(',');
      auto len = rsp::parse_hex_u64(p.substr(comma + 1)).value_or(0);
      return std::string(static_cast<std::size_t>(len) * 2, '0');
    }
    if (p == "\x03") return "T02thread:p01.01;";
    if (p.rfind("vCont;", 0) == 0) return std::nullopt;  // the stop comes later
    return "";
  }

  void serve() {
    while (!stop_) {
      pollfd l{listen_fd_, POLLIN, 0};
      if (::poll(&l, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      int one = 1;  // ack and reply are separate writes: don't let Nagle hold the reply
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      {
        std::lock_guard<std::mutex> g(mu_);
        client_fd_ = fd;
      }
      ++connections_;
      if (!greeting_.empty()) {
        std::string f = rsp::frame_packet(greeting_);
        (void)!::write(fd, f.data(), f.size());
      }
      talk(fd);
      std::lock_guard<std::mutex> g(mu_);
      ::close(fd);
      client_fd_ = -1;
    }
  }

  void talk(int fd) {
    std::string buf;
    while (!stop_) {
      if (hang_up_) {
        hang_up_ = false;
        return;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char tmp[8192];
      ssize_t n = ::read(fd, tmp, sizeof tmp);
      if (n <= 0) return;
      buf.append(tmp, static_cast<std::size_t>(n));
      while (!buf.empty()) {
        if (buf[0] == '+' || buf[0] == '-') {
          if (buf[0] == '+') ++acks_;
          buf.erase(0, 1);
          continue;
        }
        std::string packet;
        if (buf[0] == '\x03') {
          packet = "\x03";
          buf.erase(0, 1);
        } else {
          auto start = buf.find('$');
          auto hash = buf.find('#', start);
          if (start == std::string::npos || hash == std::string::npos || buf.size() < hash + 3) break;
          packet = buf.substr(start + 1, hash - start - 1);
          buf.erase(0, hash + 3);
          (void)!::write(fd, "+", 1);
        }
        {
          std::lock_guard<std::mutex> g(mu_);
          packets_.push_back(packet);
        }
        if (auto r = respond(packet)) {
          std::lock_guard<std::mutex> g(mu_);
          std::string f = rsp::frame_packet(*r);
          (void)!::write(fd, f.data(), f.size());
        }
      }
    }
  }

  Responder extra_;
  int listen_fd_ = -1;
  std::atomic<int> client_fd_{-1};
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> hang_up_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> acks_{0};
  std::string greeting_;
  std::mutex mu_;
  std::vector<std::string> packets_;
};

// Runs the loop until `done` or two seconds pass.
bool run_until(asio::io_context& io, const std::function<bool()>& done) {
  auto end = std::chrono::steady_clock::now() + 2s;
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(5ms);
  }
  return done();
}

ResumeAction continue_all() { return ResumeAction{}; }

}  // namespace

TEST_CASE("vm target: handshake, threads, register description") {
  FakeStub stub;
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  CHECK(vm.mode() == Mode::Kernel);
  CHECK(vm.has_processes());
  CHECK(vm.processes().empty());
  CHECK(vm.threads() == std::vector<ThreadRef>{{1, 1}, {1, 2}});
  CHECK(vm.thread_name({1, 2}) == "CPU#1");
  CHECK(vm.thread_alive({1, 2}));
  CHECK_FALSE(vm.thread_alive({1, 3}));
  std::string xml = vm.target_xml();
  CHECK(xml.find("xi:include") == std::string::npos);
  CHECK(xml.find("<!DOCTYPE feature") == std::string::npos);
  CHECK(xml.find("<feature name=\"org.gnu.gdb.i386.core\">") != std::string::npos);
  CHECK(vm.expedited_registers() == std::vector<int>{16, 7, 6});
  REQUIRE(vm.last_stop());
  CHECK(vm.last_stop()->thread == ThreadRef{1, 1});
  CHECK(vm.describe().find("2 vCPUs") != std::string::npos);
}

TEST_CASE("vm target: registers, memory split to the packet size") {
  FakeStub stub;
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  auto regs = vm.read_registers({1, 2});
  REQUIRE(regs.ok());
  CHECK(*regs == std::string("\x01\0\0\0\0\0\0\0", 8) + std::string(8, '\0'));  // 'x' bytes read as 0
  CHECK(stub.saw("Hgp1.2"));
  auto pc = vm.read_register({1, 2}, 16);
  REQUIRE(pc.ok());
  CHECK(rsp::from_le_bytes(*pc) == 0xfff0);
  auto mem = vm.read_memory(0, 0x1000, 5000);
  REQUIRE(mem.ok());
  CHECK(mem->size() == 5000);
  int reads = 0;
  for (const auto& p : stub.packets()) {
    if (p[0] != 'm') continue;
    ++reads;
    auto len = rsp::parse_hex_u64(p.substr(p.find(',') + 1));
    CHECK(*len <= 0x800);  // QEMU's PacketSize is 0x1000: hex doubles
  }
  CHECK(reads == 3);
  CHECK_FALSE(vm.read_registers({1, 9}).ok());  // no such vCPU
}

TEST_CASE("vm target: a resume's stop arrives asynchronously") {
  FakeStub stub;
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  std::vector<StopEvent> stops;
  vm.set_stop_handler([&](const StopEvent& ev) { stops.push_back(ev); });
  REQUIRE(vm.insert_breakpoint(0, BreakpointType::Software, 0xfff0, 1).ok());

  REQUIRE(vm.resume({continue_all()}).ok());
  CHECK(vm.running());
  CHECK(stops.empty());
  CHECK_FALSE(vm.read_registers({1, 1}).ok());  // not while it runs
  io.restart();
  io.run_for(20ms);
  CHECK(stops.empty());  // nothing until the VM stops
  stub.push("T05thread:p01.02;");
  REQUIRE(run_until(io, [&] { return !stops.empty(); }));
  CHECK_FALSE(vm.running());
  CHECK(stops[0].kind == StopEvent::Kind::Signal);
  CHECK(stops[0].signal == SIGTRAP);
  CHECK(stops[0].thread == ThreadRef{1, 2});
  CHECK(stops[0].reason == StopEvent::Reason::SwBreak);  // pc 0xfff0 is our breakpoint
  CHECK(stub.saw("vCont;c"));

  // A step, then a watchpoint.
  ResumeAction step;
  step.kind = ResumeAction::Kind::Step;
  step.thread = ThreadRef{1, 1};
  REQUIRE(vm.resume({step, continue_all()}).ok());
  CHECK(stub.saw("vCont;s:p1.1;c"));
  stub.push("T05thread:p01.01;");
  REQUIRE(run_until(io, [&] { return stops.size() == 2; }));
  CHECK(stops[1].reason == StopEvent::Reason::Step);
  REQUIRE(vm.resume({continue_all()}).ok());
  stub.push("T05thread:p01.01;awatch:7000;");
  REQUIRE(run_until(io, [&] { return stops.size() == 3; }));
  CHECK(stops[2].reason == StopEvent::Reason::AccessWatch);
  CHECK(stops[2].data_addr == 0x7000);

  // Interrupt.
  REQUIRE(vm.resume({continue_all()}).ok());
  REQUIRE(vm.interrupt().ok());
  REQUIRE(run_until(io, [&] { return stops.size() == 4; }));
  CHECK(stops[3].signal == SIGINT);
  CHECK(stops[3].reason == StopEvent::Reason::Interrupt);
}

TEST_CASE("vm target: release takes breakpoints out and detaches; never k") {
  FakeStub stub;
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  REQUIRE(vm.insert_breakpoint(0, BreakpointType::Hardware, 0xfe05b, 1).ok());
  REQUIRE(vm.insert_breakpoint(0, BreakpointType::WriteWatch, 0x7000, 4).ok());
  CHECK_FALSE(vm.kill_process(1).ok());
  REQUIRE(vm.resume({continue_all()}).ok());
  vm.release_all();  // while running: interrupt, then clean up
  auto p = stub.packets();
  auto at = [&](const std::string& s) { return std::find(p.begin(), p.end(), s) - p.begin(); };
  CHECK(at("\x03") < at("z1,fe05b,1"));
  CHECK(at("z1,fe05b,1") < at("D;1"));
  CHECK(at("z2,7000,4") < at("D;1"));
  CHECK(at("D;1") < static_cast<long>(p.size()));
  for (const auto& s : p) CHECK_MESSAGE(s != "k", "sent k");
  CHECK_FALSE(stub.saw("vKill"));
  CHECK_FALSE(vm.has_processes());
  CHECK_FALSE(vm.running());

  // The next debugger's first query connects again.
  CHECK(stub.connections() == 1);
  CHECK(vm.threads().size() == 2);
  CHECK(vm.has_processes());
  CHECK(stub.connections() == 2);
}

TEST_CASE("vm target: a stub that accepts but never answers costs one deadline, not one per request") {
  // QEMU stopped (SIGSTOP): its socket still accepts, nothing answers.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  VmTarget vm(io, "127.0.0.1", silent.local_endpoint().port(), 300ms);
  vm.set_name("lab-a");
  auto t0 = std::chrono::steady_clock::now();
  CHECK(vm.threads().empty());  // the first query tries, and waits its deadline
  CHECK(vm.target_xml().empty());
  auto r = vm.read_registers({1, 1});
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("VM lab-a (gdbstub 127.0.0.1:") != std::string::npos);
  CHECK(r.error().message.find("has not answered for") != std::string::npos);
  CHECK(took < 900ms);  // one 300 ms deadline, not three
  vm.release_all();
}

TEST_CASE("vm target: a stub that stops answering is lost, within the deadline") {
  std::atomic<bool> mute{false};
  FakeStub stub([&](const std::string& p) -> std::optional<std::string> {
    if (mute && p == "g") return kNoReply;
    return std::nullopt;
  });
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port(), 300ms);
  REQUIRE(vm.connect().ok());
  mute = true;
  auto t0 = std::chrono::steady_clock::now();
  auto r = vm.read_registers({1, 1});
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("did not answer") != std::string::npos);
  CHECK(took < 2s);
  CHECK_FALSE(vm.has_processes());
  auto again = vm.read_memory(0, 0, 4);  // fails at once, saying why: the VM and how long
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("the VM (gdbstub 127.0.0.1:") != std::string::npos);
  CHECK(again.error().message.find("has not answered for 0 s") != std::string::npos);
  // The debugger leaves; the next one gets a fresh connection.
  vm.release_all();
  mute = false;
  CHECK(vm.threads().size() == 2);
}

TEST_CASE("vm target: a hang-up while the VM runs is reported as a stop") {
  FakeStub stub;
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  std::vector<StopEvent> stops;
  vm.set_stop_handler([&](const StopEvent& ev) { stops.push_back(ev); });
  REQUIRE(vm.resume({continue_all()}).ok());
  stub.hang_up();
  REQUIRE(run_until(io, [&] { return !stops.empty(); }));
  CHECK(stops[0].kind == StopEvent::Kind::Terminated);
  CHECK(stops[0].signal == SIGHUP);
  CHECK_FALSE(vm.has_processes());
  CHECK_FALSE(vm.running());
}

TEST_CASE("vm target: nobody listening is a clear error") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  ::close(fd);  // bound, never listened: the port refuses
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", port);
  auto st = vm.connect();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("cannot connect to the VM's gdbstub at 127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
  CHECK_FALSE(vm.has_processes());
}

TEST_CASE("vm target: the stop QEMU reports on connecting is no reply to qSupported") {
  FakeStub stub;
  stub.set_greeting("T02thread:p01.01;");
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  CHECK(vm.threads().size() == 2);
  REQUIRE(vm.last_stop());
  CHECK(vm.last_stop()->signal == SIGTRAP);  // from '?'
}

TEST_CASE("vm target: no-ack mode when offered; Hc and c/s without vCont; c ADDR") {
  FakeStub stub([](const std::string& p) -> std::optional<std::string> {
    if (p.rfind("qSupported", 0) == 0) return "PacketSize=1000;qXfer:features:read+;QStartNoAckMode+";
    if (p == "QStartNoAckMode") return "OK";
    if (p == "vCont?") return "";
    if (p.rfind("Hc", 0) == 0 || p.rfind("P10=", 0) == 0) return "OK";
    if (p == "s" || p == "c") return kNoReply;  // the stop comes later
    if (p == "qfThreadInfo") return "m1,2";
    if (p.rfind("qThreadExtraInfo,", 0) == 0) return "";
    return std::nullopt;
  });
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  REQUIRE(vm.connect().ok());
  CHECK(vm.threads() == std::vector<ThreadRef>{{1, 1}, {1, 2}});  // plain ids: pid 1
  CHECK(vm.thread_name({1, 1}).empty());
  int acks = stub.acks();
  REQUIRE(vm.read_register({1, 2}, 16).ok());
  CHECK(stub.saw("Hg2"));
  CHECK(stub.acks() == acks);  // no '+' after QStartNoAckMode

  std::vector<StopEvent> stops;
  vm.set_stop_handler([&](const StopEvent& ev) { stops.push_back(ev); });
  ResumeAction step;
  step.kind = ResumeAction::Kind::Step;
  step.thread = ThreadRef{1, 2};
  REQUIRE(vm.resume({step, continue_all()}).ok());
  CHECK(stub.saw("Hc2"));
  CHECK(stub.saw("s"));
  stub.push("S05");  // no thread: the first vCPU
  REQUIRE(run_until(io, [&] { return !stops.empty(); }));
  CHECK(stops[0].thread == ThreadRef{1, 1});
  CHECK(stops[0].reason == StopEvent::Reason::Step);

  ResumeAction at;
  at.addr = 0x7c00;
  at.thread = ThreadRef{1, 1};
  REQUIRE(vm.resume({at, continue_all()}).ok());
  CHECK(stub.saw("P10=007c000000000000"));
  CHECK(stub.saw("c"));
}

// ---------------------------------------------------------------------------
// Target description documents

TEST_CASE("vm target description: includes are inlined") {
  std::vector<std::string> asked;
  auto reader = [&](const std::string& annex) -> Result<std::string> {
    asked.push_back(annex);
    if (annex == "core.xml") return std::string(kCoreXml);
    if (annex == "a.xml") return std::string("<feature name=\"a\"><xi:include href='b.xml'/></feature>");
    if (annex == "b.xml") return std::string("<reg name=\"x\" bitsize=\"8\"/>");
    if (annex == "loop.xml") return std::string("<xi:include href=\"loop.xml\"/>");
    return make_error(2, "no document " + annex);
  };
  auto doc = vm::inline_includes(kTargetXml, reader);
  REQUIRE(doc.ok());
  CHECK(asked == std::vector<std::string>{"core.xml"});
  CHECK(doc->find("<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\"><target>") == 0);
  CHECK(doc->find("<!-- notice -->") != std::string::npos);
  CHECK(doc->find("<!DOCTYPE feature") == std::string::npos);
  CHECK(doc->find("<?xml", 1) == std::string::npos);
  CHECK(doc->find("</feature></target>") != std::string::npos);

  auto nested = vm::inline_includes("<target><xi:include href=\"a.xml\"></xi:include></target>", reader);
  REQUIRE(nested.ok());
  CHECK(*nested == "<target><feature name=\"a\"><reg name=\"x\" bitsize=\"8\"/></feature></target>");
  // A commented-out include stays a comment.
  auto commented = vm::inline_includes("<target><!-- <xi:include href=\"zz.xml\"/> --></target>", reader);
  REQUIRE(commented.ok());
  CHECK(*commented == "<target><!-- <xi:include href=\"zz.xml\"/> --></target>");

  CHECK_FALSE(vm::inline_includes("<xi:include href=\"loop.xml\"/>", reader).ok());
  CHECK_FALSE(vm::inline_includes("<xi:include href=\"missing.xml\"/>", reader).ok());
  CHECK_FALSE(vm::inline_includes("<xi:include/>", reader).ok());
  CHECK_FALSE(vm::inline_includes("<xi:include href=\"a:b\"/>", reader).ok());
  CHECK_FALSE(vm::inline_includes("<xi:include href=\"../etc/passwd\"/>", reader).ok());
  CHECK_FALSE(vm::inline_includes("<xi:include href=\"a.xml\"", reader).ok());
  CHECK_FALSE(vm::inline_includes("<!-- open", reader).ok());
  vm::InlineLimits small;
  small.max_size = 16;
  CHECK_FALSE(vm::inline_includes(kTargetXml, reader, small).ok());
}

TEST_CASE("vm target description: registers numbered as gdb does") {
  auto regs = vm::parse_registers(kCoreXml);
  REQUIRE(regs.size() == 5);
  CHECK(regs[0].name == "rax");
  CHECK(regs[0].regno == 0);
  CHECK(regs[1].regno == 6);
  CHECK(regs[2].name == "rsp");
  CHECK(regs[2].regno == 7);
  CHECK(regs[3].regno == 16);
  CHECK(regs[4].name == "eflags");
  CHECK(regs[4].regno == 17);
  CHECK(regs[4].bitsize == 32);
  auto pc = vm::find_register(regs, {"rip", "eip", "pc"});
  REQUIRE(pc);
  CHECK(pc->regno == 16);
  CHECK_FALSE(vm::find_register(regs, {"cr0"}));
  // Commented-out and malformed registers don't count; <regs> is no <reg>.
  auto odd = vm::parse_registers("<!-- <reg name=\"a\" bitsize=\"8\"/> --><regs/><reg name=\"b\" bitsize=\"x\"/>"
                                 "<reg bitsize=\"8\"/><reg name='c' bitsize='16'/>");
  REQUIRE(odd.size() == 1);
  CHECK(odd[0].name == "c");
  CHECK(odd[0].regno == 2);
}

TEST_CASE("vm target: the hold observer hears attach, breakpoints and the detach") {
  FakeStub stub;
  asio::io_context io;
  VmTarget vm(io, "127.0.0.1", stub.port());
  std::vector<VmHold> seen;
  vm.set_hold_observer([&](const VmHold& h) { seen.push_back(h); });
  REQUIRE(vm.connect().ok());
  REQUIRE(vm.insert_breakpoint(0, BreakpointType::Software, 0x1234, 1).ok());
  REQUIRE(vm.insert_breakpoint(0, BreakpointType::Hardware, 0xfe05b, 1).ok());
  REQUIRE(vm.remove_breakpoint(0, BreakpointType::Software, 0x1234, 1).ok());
  vm.release_all();
  REQUIRE(seen.size() == 5);
  CHECK(seen[0].attached);
  CHECK(seen[0].breakpoints.empty());
  CHECK(seen[2].breakpoints.size() == 2);
  REQUIRE(seen[3].breakpoints.size() == 1);
  CHECK(seen[3].breakpoints[0].addr == 0xfe05b);
  CHECK(seen[3].breakpoints[0].type == BreakpointType::Hardware);
  CHECK_FALSE(seen[4].attached);  // detached: the VM runs on
  CHECK(seen[4].breakpoints.empty());
}

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "protocol/rsp/framing.h"
#include "protocol/rsp/hex.h"
#include "protocol/rsp/request.h"

using namespace dbgstub;
using namespace dbgstub::rsp;

namespace {

// Parses and requires a specific request type.
template <typename T>
T parse_as(std::string_view payload) {
  auto r = parse_request(payload);
  INFO("payload: ", std::string(payload));
  REQUIRE_MESSAGE(r.ok(), "error: ", r.ok() ? std::string() : r.error().message);
  REQUIRE(std::holds_alternative<T>(*r));
  return std::get<T>(*r);
}

std::string error_of(std::string_view payload) {
  auto r = parse_request(payload);
  INFO("payload: ", std::string(payload));
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

std::string unsupported_name(std::string_view payload) { return parse_as<Unsupported>(payload).name; }

}  // namespace

TEST_CASE("hex helpers") {
  CHECK(hex_digit('a') == 10);
  CHECK(hex_digit('F') == 15);
  CHECK(hex_digit('g') == -1);
  CHECK(to_hex(std::string("\x00\xff\x10", 3)) == "00ff10");
  CHECK(from_hex("00FF10") == std::string("\x00\xff\x10", 3));
  CHECK_FALSE(from_hex("abc"));
  CHECK_FALSE(from_hex("zz"));
  CHECK(parse_hex_u64("ffffffffffffffff") == UINT64_MAX);
  CHECK(parse_hex_u64("000000000000000000001") == 1u);
  CHECK_FALSE(parse_hex_u64("10000000000000000"));
  CHECK_FALSE(parse_hex_u64(""));
  CHECK_FALSE(parse_hex_u64("-1"));
  CHECK(hex_u64(0) == "0");
  CHECK(hex_u64(0x7fff0010) == "7fff0010");
  CHECK(hex_u8(5) == "05");
  CHECK(le_bytes(0x0102, 4) == std::string("\x02\x01\x00\x00", 4));
  CHECK(le_bytes(0x0102, 1) == "\x02");
  CHECK(from_le_bytes(std::string("\x02\x01\x00\x00", 4)) == 0x0102);
  CHECK(from_le_bytes(le_bytes(0x1122334455667788, 8)) == 0x1122334455667788);
}

TEST_CASE("thread ids") {
  CHECK(parse_thread_id("1a") == ThreadId{0, 0x1a});
  CHECK(parse_thread_id("-1") == ThreadId{0, -1});
  CHECK(parse_thread_id("0") == ThreadId{0, 0});
  CHECK(parse_thread_id("p1.2") == ThreadId{1, 2});
  CHECK(parse_thread_id("p1.-1") == ThreadId{1, -1});
  CHECK(parse_thread_id("p-1") == ThreadId{-1, -1});
  CHECK(parse_thread_id("p7") == ThreadId{7, -1});
  CHECK_FALSE(parse_thread_id(""));
  CHECK_FALSE(parse_thread_id("p"));
  CHECK_FALSE(parse_thread_id("p1."));
  CHECK_FALSE(parse_thread_id("-2"));
  CHECK_FALSE(parse_thread_id("8000000000000000"));
  CHECK_FALSE(parse_thread_id("p1.2.3"));
}

TEST_CASE("simple queries") {
  parse_as<QueryHaltReason>("?");
  parse_as<StartNoAckMode>("QStartNoAckMode");
  parse_as<QueryCurrentThread>("qC");
  parse_as<ThreadInfoFirst>("qfThreadInfo");
  parse_as<ThreadInfoNext>("qsThreadInfo");
  parse_as<QueryOffsets>("qOffsets");
  parse_as<QueryTStatus>("qTStatus");
  parse_as<QueryHostInfo>("qHostInfo");
  parse_as<QueryWorkingDir>("qGetWorkingDir");
  parse_as<VContQuery>("vCont?");
  parse_as<VStopped>("vStopped");
  parse_as<VCtrlC>("vCtrlC");
  parse_as<Kill>("k");
  CHECK_FALSE(parse_as<QueryProcessInfo>("qProcessInfo").pid);
  CHECK(parse_as<QueryProcessInfo>("qProcessInfoPID:1234").pid == 1234);  // decimal
}

TEST_CASE("qSupported") {
  CHECK(parse_as<QSupported>("qSupported").features.empty());
  auto q = parse_as<QSupported>("qSupported:multiprocess+;swbreak+;xmlRegisters=i386;;vContSupported+");
  CHECK(q.features == std::vector<std::string>{"multiprocess+", "swbreak+", "xmlRegisters=i386", "vContSupported+"});
}

TEST_CASE("registers, with and without lldb's thread suffix") {
  CHECK_FALSE(parse_as<ReadAllRegisters>("g").thread);
  CHECK(parse_as<ReadAllRegisters>("g;thread:1f;").thread == ThreadId{0, 0x1f});
  auto w = parse_as<WriteAllRegisters>("G0102ff");
  CHECK(w.data == std::string("\x01\x02\xff"));
  CHECK(parse_as<WriteAllRegisters>("G00;thread:p2.3;").thread == ThreadId{2, 3});
  auto p = parse_as<ReadRegister>("p1f");
  CHECK(p.regno == 0x1f);
  CHECK_FALSE(p.thread);
  auto pt = parse_as<ReadRegister>("p1f;thread:2a;");
  CHECK(pt.regno == 0x1f);
  CHECK(pt.thread == ThreadId{0, 0x2a});
  auto P = parse_as<WriteRegister>("P10=0011223344556677");
  CHECK(P.regno == 0x10);
  CHECK(P.value == std::string("\x00\x11\x22\x33\x44\x55\x66\x77", 8));
  CHECK(parse_as<WriteRegister>("P10=00;thread:5").thread == ThreadId{0, 5});
}

TEST_CASE("memory") {
  auto m = parse_as<ReadMemory>("m7fff0010,40");
  CHECK(m.addr == 0x7fff0010);
  CHECK(m.length == 0x40);
  CHECK_FALSE(m.binary);
  auto x = parse_as<ReadMemory>("x1000,0");
  CHECK(x.binary);
  CHECK(x.length == 0);
  CHECK(parse_as<ReadMemory>("m0,100000").length == kMaxTransfer);
  auto M = parse_as<WriteMemory>("M1000,3:01ff7e");
  CHECK(M.addr == 0x1000);
  CHECK(M.data == "\x01\xff\x7e");
  auto X = parse_as<WriteMemory>(std::string("X2000,4:a:\0#", 12));
  CHECK(X.addr == 0x2000);
  CHECK(X.data == std::string("a:\0#", 4));
  CHECK(parse_as<WriteMemory>("X2000,0:").data.empty());  // binary-support probe
  CHECK(parse_as<WriteMemory>("M2000,0:").data.empty());
}

TEST_CASE("breakpoints") {
  auto z = parse_as<Breakpoint>("Z0,401000,1");
  CHECK(z.insert);
  CHECK(z.type == 0);
  CHECK(z.addr == 0x401000);
  CHECK(z.kind == 1);
  auto w = parse_as<Breakpoint>("z2,7ffe0,8");
  CHECK_FALSE(w.insert);
  CHECK(w.type == 2);
  CHECK(w.kind == 8);
  auto c = parse_as<Breakpoint>("Z1,400000,1;X3,220027;cmds:0,X1,41");
  CHECK(c.type == 1);
  CHECK(c.kind == 1);
  CHECK(parse_as<Breakpoint>("Z4,0,4").type == 4);
}

TEST_CASE("legacy resume") {
  auto c = parse_as<Resume>("c");
  CHECK_FALSE(c.step);
  CHECK_FALSE(c.addr);
  CHECK(parse_as<Resume>("c401000").addr == 0x401000u);
  auto C = parse_as<Resume>("C05");
  CHECK(C.signal == 5);
  CHECK_FALSE(C.addr);
  auto Ca = parse_as<Resume>("C0b;1234");
  CHECK(Ca.signal == 11);
  CHECK(Ca.addr == 0x1234u);
  CHECK(parse_as<Resume>("s").step);
  CHECK(parse_as<Resume>("s10").addr == 0x10u);
  auto S = parse_as<Resume>("S1e;400");
  CHECK(S.step);
  CHECK(S.signal == 30);
  CHECK(S.addr == 0x400u);
}

TEST_CASE("vCont") {
  auto v = parse_as<VCont>("vCont;c");
  REQUIRE(v.actions.size() == 1);
  CHECK(v.actions[0].action == 'c');
  CHECK_FALSE(v.actions[0].thread);

  v = parse_as<VCont>("vCont;s:p1.2;c");
  REQUIRE(v.actions.size() == 2);
  CHECK(v.actions[0].action == 's');
  CHECK(v.actions[0].thread == ThreadId{1, 2});
  CHECK(v.actions[1].action == 'c');

  v = parse_as<VCont>("vCont;C05:3");
  CHECK(v.actions[0].action == 'C');
  CHECK(v.actions[0].signal == 5);
  CHECK(v.actions[0].thread == ThreadId{0, 3});

  v = parse_as<VCont>("vCont;S0b:p5.-1");
  CHECK(v.actions[0].signal == 11);
  CHECK(v.actions[0].thread == ThreadId{5, -1});

  v = parse_as<VCont>("vCont;r1000,2000:3");
  CHECK(v.actions[0].action == 'r');
  CHECK(v.actions[0].range_start == 0x1000);
  CHECK(v.actions[0].range_end == 0x2000);
  CHECK(v.actions[0].thread == ThreadId{0, 3});

  // gdb's range step: "r" START,END for one thread, the others continue.
  v = parse_as<VCont>("vCont;r555555555129,555555555146:p4d2.4d2;c");
  REQUIRE(v.actions.size() == 2);
  CHECK(v.actions[0].action == 'r');
  CHECK(v.actions[0].range_start == 0x555555555129u);
  CHECK(v.actions[0].range_end == 0x555555555146u);
  CHECK(v.actions[0].thread == ThreadId{0x4d2, 0x4d2});
  CHECK(v.actions[1].action == 'c');
  v = parse_as<VCont>("vCont;r10,20");
  CHECK(v.actions[0].range_start == 0x10u);
  CHECK_FALSE(v.actions[0].thread);

  CHECK(parse_as<VCont>("vCont;t").actions[0].action == 't');
}

TEST_CASE("threads") {
  auto h = parse_as<SetThread>("Hgp1.2");
  CHECK(h.op == 'g');
  CHECK(h.thread == ThreadId{1, 2});
  CHECK(parse_as<SetThread>("Hc-1").thread == ThreadId{0, -1});
  CHECK(parse_as<SetThread>("Hg0").thread == ThreadId{0, 0});
  CHECK(parse_as<ThreadAlive>("Tp1.2").thread == ThreadId{1, 2});
  CHECK(parse_as<ThreadAlive>("T1a").thread == ThreadId{0, 0x1a});
  CHECK(parse_as<QueryThreadStopInfo>("qThreadStopInfo1a2b").thread == ThreadId{0, 0x1a2b});
}

TEST_CASE("process control") {
  CHECK_FALSE(parse_as<Detach>("D").pid);
  CHECK(parse_as<Detach>("D;1f").pid == 0x1f);
  CHECK(parse_as<VKill>("vKill;1f").pid == 0x1f);
  CHECK(parse_as<VAttach>("vAttach;3e8").pid == 1000);
  CHECK_FALSE(parse_as<QueryAttached>("qAttached").pid);
  CHECK(parse_as<QueryAttached>("qAttached:a").pid == 10);

  auto r = parse_as<VRun>("vRun;" + to_hex("/bin/ls") + ";" + to_hex("-l") + ";;" + to_hex("a b"));
  CHECK(r.argv == std::vector<std::string>{"/bin/ls", "-l", "", "a b"});
  CHECK(parse_as<VRun>("vRun;").argv == std::vector<std::string>{""});
}

TEST_CASE("qXfer") {
  auto x = parse_as<XferRead>("qXfer:features:read:target.xml:0,fff");
  CHECK(x.object == "features");
  CHECK(x.annex == "target.xml");
  CHECK(x.offset == 0);
  CHECK(x.length == 0xfff);
  auto e = parse_as<XferRead>("qXfer:auxv:read::10,20");
  CHECK(e.object == "auxv");
  CHECK(e.annex.empty());
  CHECK(e.offset == 0x10);
  auto c = parse_as<XferRead>("qXfer:libraries-svr4:read:start=1;prev=2:with:colons:0,800");
  CHECK(c.object == "libraries-svr4");
  CHECK(c.annex == "start=1;prev=2:with:colons");
  CHECK(c.length == 0x800);
  CHECK(unsupported_name("qXfer:siginfo:frob::0:abcd") == "qXfer:siginfo:frob");
  auto w = parse_as<XferWrite>(std::string("qXfer:siginfo:write::8:a:b\0#", 28));
  CHECK(w.object == "siginfo");
  CHECK(w.annex.empty());
  CHECK(w.offset == 8);
  CHECK(w.data == std::string("a:b\0#", 5));
  CHECK(parse_as<XferWrite>("qXfer:siginfo:write::0:").data.empty());
}

TEST_CASE("QCatchSyscalls: off, every syscall, or a list of numbers") {
  auto off = parse_as<CatchSyscalls>("QCatchSyscalls:0");
  CHECK_FALSE(off.enabled);
  CHECK(off.syscalls.empty());
  auto any = parse_as<CatchSyscalls>("QCatchSyscalls:1");
  CHECK(any.enabled);
  CHECK(any.syscalls.empty());
  auto some = parse_as<CatchSyscalls>("QCatchSyscalls:1;3c;e7");
  CHECK(some.enabled);
  CHECK(some.syscalls == std::vector<int>{0x3c, 0xe7});
}

TEST_CASE("qGetTLSAddr: thread, offset in the TLS block, link_map address") {
  auto q = parse_as<QueryTlsAddress>("qGetTLSAddr:p1a2b.1a2c,10,7ffff7fc3160");
  CHECK(q.thread == ThreadId{0x1a2b, 0x1a2c});
  CHECK(q.offset == 0x10);
  CHECK(q.lm == 0x7ffff7fc3160);
  auto s = parse_as<QueryTlsAddress>("qGetTLSAddr:1a2c,0,0");
  CHECK(s.thread.tid == 0x1a2c);
  CHECK(s.lm == 0);
}

TEST_CASE("monitor, symbols, lldb queries and json") {
  CHECK(parse_as<MonitorCommand>("qRcmd," + to_hex("help")).command == "help");
  CHECK(parse_as<MonitorCommand>("qRcmd,").command.empty());
  CHECK(parse_as<QuerySymbol>("qSymbol::").raw == ":");
  CHECK(parse_as<QuerySymbol>("qSymbol:1234:6d61696e").raw == "1234:6d61696e");
  CHECK(parse_as<QueryRegisterInfo>("qRegisterInfo1a").regno == 0x1a);
  CHECK(parse_as<QueryMemoryRegionInfo>("qMemoryRegionInfo:7fff0000").addr == 0x7fff0000);
  auto j = parse_as<JsonRequest>("jThreadsInfo");
  CHECK(j.name == "jThreadsInfo");
  CHECK(j.json.empty());
  auto j2 = parse_as<JsonRequest>("jThreadExtendedInfo:{\"thread\":1}");
  CHECK(j2.name == "jThreadExtendedInfo");
  CHECK(j2.json == "{\"thread\":1}");
}

TEST_CASE("settings") {
  auto f = parse_as<SetFlag>("QDisableRandomization:1");
  CHECK(f.name == "QDisableRandomization");
  CHECK(f.value);
  CHECK_FALSE(parse_as<SetFlag>("QStartupWithShell:0").value);
  CHECK_FALSE(parse_as<SetFlag>("QNonStop:0").value);
  CHECK(parse_as<SetFlag>("QThreadEvents:1").value);
  for (const char* name : {"QListThreadsInStopReply", "QThreadSuffixSupported", "QEnableErrorStrings"}) {
    auto g = parse_as<SetFlag>(name);
    CHECK(g.name == name);
    CHECK(g.value);
  }

  CHECK(parse_as<PassSignals>("QPassSignals:0e;14;1e").signals == std::vector<int>{14, 20, 30});
  CHECK(parse_as<PassSignals>("QPassSignals:").signals.empty());
  CHECK(parse_as<PassSignals>("QPassSignals:e").signals == std::vector<int>{14});
  CHECK(parse_as<ProgramSignals>("QProgramSignals:2;5").signals == std::vector<int>{2, 5});

  auto env = parse_as<SetEnvironment>("QEnvironmentHexEncoded:" + to_hex("FOO=bar=baz"));
  CHECK(env.name == "FOO");
  CHECK(env.value == "bar=baz");
  CHECK_FALSE(env.unset);
  CHECK(parse_as<SetEnvironment>("QEnvironmentHexEncoded:" + to_hex("EMPTY=")).value.empty());
  auto un = parse_as<SetEnvironment>("QEnvironmentUnset:" + to_hex("FOO"));
  CHECK(un.name == "FOO");
  CHECK(un.unset);
  CHECK(parse_as<SetEnvironment>("QEnvironmentReset").reset);

  CHECK(parse_as<SetWorkingDir>("QSetWorkingDir:" + to_hex("/tmp")).dir == "/tmp");
  CHECK(parse_as<SetWorkingDir>("QSetWorkingDir:").dir.empty());
}

TEST_CASE("unknown and unimplemented packets are Unsupported") {
  CHECK(unsupported_name("") == "");
  CHECK(unsupported_name("vMustReplyEmpty") == "vMustReplyEmpty");
  CHECK(unsupported_name("qTfV") == "qTfV");
  CHECK(unsupported_name("qTfP") == "qTfP");
  CHECK(unsupported_name("vFile:fchmod:1,2") == "vFile:fchmod");
  CHECK(unsupported_name("QAgent:1") == "QAgent");
  CHECK(unsupported_name("qL1200000000000000000") == "qL1200000000000000000");
  CHECK(unsupported_name("qP0000001f0000000000001234") == "qP0000001f0000000000001234");
  CHECK(unsupported_name("bc") == "bc");
  CHECK(unsupported_name("bs") == "bs");
  CHECK(unsupported_name("!") == "!");
  CHECK(unsupported_name("qCRC:0,10") == "qCRC");
  CHECK(unsupported_name("qThreadExtraInfo,1") == "qThreadExtraInfo");
  CHECK(unsupported_name("QSetDisableASLR:1") == "QSetDisableASLR");
}

TEST_CASE("errors name the packet") {
  CHECK(error_of("m1000,zz") == "m: bad length");
  CHECK(error_of("Z9,0,1") == "Z: bad breakpoint type");
  CHECK(error_of("vCont;q") == "vCont: unknown action");
  CHECK(error_of("qXfer:features:read:target.xml:0,zz") == "qXfer: bad length");
  CHECK(error_of("qXfer:features:read:target.xml") == "qXfer: missing annex");
}

// Each of these must give an Error or Unsupported; run under ASan/UBSan.
TEST_CASE("malformed packets never crash") {
  const std::string over = "m0," + hex_u64(kMaxTransfer + 1);
  const std::vector<std::string> cases = {
      "m", "m1000", "m1000,", "m,10", "mzz,10", "m10000000000000000,1", "m0,10000000000000000",
      over, "x1,ffffffffffffffff", "M1000,2:0011223", "M1000,2:00112233", "M1000,2:zz11",
      "M1000,2", "M1000,ffffffff:00", "X1000,2:a", "X1000,1:ab", "X1000,100000000:",
      "Z", "Z0", "Z0,1000", "Z5,1000,1", "Z0,1000,1,2", "Zq,1,1", "z0,,1",
      "c1x", "C", "Cxyz", "C100", "C05;", "S05;zz", "sq",
      "vCont", "vCont;", "vCont;c;", "vCont;x", "vCont;C", "vCont;Czz:1", "vCont;c:", "vCont;c:pz",
      "vCont;r1000:1", "vCont;r1000,zz", "vCont;cx", "vCont;r,10", "vCont;r10,", "vCont;r1,2,3",
      "H", "Hg", "Hx1", "Hgq", "Hc-2", "T", "Tp1.", "Tzz",
      "D1", "D;", "D;zz", "D;0", "vKill", "vKill;", "vKill;zz", "vAttach;0", "vAttach;-1",
      "vRun", "vRun;zz", "vRun;abc",
      "g1", "g;thread:zz;", "Gzz", "G0", "p", "pzz", "p1;thread:", "P1", "P1=", "P1=zz", "Pzz=00",
      "qXfer", "qXfer:", "qXfer::read:a:0,1", "qXfer:features", "qXfer:features:read",
      "qXfer:features:read:a:zz,1", "qXfer:features:read:a:0,200000",
      "qXfer:siginfo:write", "qXfer:siginfo:write:", "qXfer:siginfo:write::", "qXfer:siginfo:write::zz:ab",
      "qRcmd", "qRcmd,abc", "qRcmd,zz", "qGetTLSAddr", "qGetTLSAddr:", "qGetTLSAddr:1,2",
      "qGetTLSAddr:1,2,3,4", "qGetTLSAddr:zz,1,2", "qGetTLSAddr:1,,2", "qGetTLSAddr:1,2,zz", "qSymbol", "qAttached:", "qAttached:zz",
      "qProcessInfoPID:", "qProcessInfoPID:abc", "qProcessInfoPID:99999999999999999999",
      "qRegisterInfo", "qRegisterInfozz", "qMemoryRegionInfo", "qMemoryRegionInfo:", "qThreadStopInfo",
      "QPassSignals", "QPassSignals:zz", "QPassSignals:100", "QProgramSignals:1;;x",
      "QDisableRandomization", "QDisableRandomization:2", "QNonStop:", "QThreadSuffixSupported:1",
      "QCatchSyscalls", "QCatchSyscalls:2;1", "QCatchSyscalls:", "QCatchSyscalls:1;", "QCatchSyscalls:1;zz",
      "QCatchSyscalls:1;3c;", "QCatchSyscalls:10", "QCatchSyscalls:1;100000000",
      "QEnvironmentHexEncoded", "QEnvironmentHexEncoded:zz", "QEnvironmentHexEncoded:" + to_hex("NOEQUALS"),
      "QEnvironmentHexEncoded:" + to_hex("=x"), "QEnvironmentUnset:", "QEnvironmentUnset:z",
      "QSetWorkingDir", "QSetWorkingDir:abc",
      "?x", "kk", std::string("m\0,1", 4), std::string(1, '\xff'), "j", "\x03", "}}}", "$#",
  };
  CHECK(cases.size() >= 40);
  for (const auto& c : cases) {
    auto r = parse_request(c);
    INFO("payload: ", c);
    if (r.ok()) {
      CHECK(std::holds_alternative<Unsupported>(*r));
    } else {
      CHECK_FALSE(r.error().message.empty());
    }
  }
}

// Property-style: arbitrary bytes through the framer and parser must not
// crash or trip the sanitizers.
TEST_CASE("random bytes through framer and parser") {
  std::mt19937 rng(12345);
  // Bias towards protocol-significant bytes so that packets actually form.
  const std::string alphabet = "$#}*+-\x03" "0123456789abcdef,:;.pmMxXZzgGqQvcCsS";
  auto next_byte = [&]() -> char {
    unsigned r = rng();
    if (r % 4 == 0) return static_cast<char>(r >> 8);
    return alphabet[(r >> 8) % alphabet.size()];
  };
  Framer framer(512);
  std::size_t packets = 0, total_events = 0;
  std::string chunk;
  for (int i = 0; i < 200000;) {
    chunk.clear();
    std::size_t n = 1 + rng() % 64;
    for (std::size_t k = 0; k < n; ++k, ++i) chunk.push_back(next_byte());
    // Occasionally splice in a well-formed packet with a random payload.
    if (rng() % 8 == 0) chunk += frame_packet(chunk.substr(0, chunk.size() / 2));
    std::vector<FrameEvent> events;
    framer.feed(chunk, events);
    total_events += events.size();
    for (const auto& e : events) {
      if (e.kind != FrameEvent::Kind::Packet) continue;
      ++packets;
      CHECK(e.payload.size() <= 512);
      (void)parse_request(e.payload);
      (void)parse_thread_id(e.payload);
    }
  }
  CHECK(packets > 100);
  CHECK(total_events > 1000);
}

TEST_CASE("host I/O requests") {
  auto o = parse_as<HostFile>("vFile:open:2f62696e2f7368,0,1ff");
  CHECK(o.op == HostFile::Op::Open);
  CHECK(o.path == "/bin/sh");
  CHECK(o.mode == 0x1ff);
  auto r = parse_as<HostFile>("vFile:pread:5,3fff,1000");
  CHECK(r.op == HostFile::Op::Pread);
  CHECK(r.fd == 5);
  CHECK(r.count == 0x3fff);
  CHECK(r.offset == 0x1000);
  CHECK(parse_as<HostFile>("vFile:close:5").op == HostFile::Op::Close);
  CHECK(parse_as<HostFile>("vFile:fstat:5").op == HostFile::Op::Fstat);
  CHECK(parse_as<HostFile>("vFile:setfs:0").op == HostFile::Op::SetFs);
  CHECK(parse_as<HostFile>("vFile:readlink:2f70726f632f73656c662f657865").path == "/proc/self/exe");
  // A huge count is clamped, never allocated.
  CHECK(parse_as<HostFile>("vFile:pread:5,ffffffffffff,0").count <= kMaxTransfer);
  for (const char* bad : {"vFile:open:zz,0,0", "vFile:open:,0,0", "vFile:open:61", "vFile:pread:1,2",
                          "vFile:close:", "vFile:close:-1", "vFile:", "vFile:readlink:6100"}) {
    CHECK_MESSAGE(!parse_request(bad).ok(), bad);
  }
}

// Found by fuzz_parse_request: a bare "vFile" made parse_vfile call
// substr(6) on a 5-byte payload, which threw std::out_of_range.
TEST_CASE("bare vFile is an error, not an exception") {
  for (const char* p : {"vFile", "vFile;", "vFile:"}) {
    auto r = parse_request(p);
    CHECK_MESSAGE(!r.ok(), p);
    if (!r.ok()) CHECK(r.error().message == "vFile: missing operation arguments");
  }
}

TEST_CASE("vFile:pwrite carries binary data") {
  auto w = parse_as<HostFile>(std::string_view("vFile:pwrite:3,10,a,b\0c", 23));
  CHECK(w.op == HostFile::Op::Pwrite);
  CHECK(w.fd == 3);
  CHECK(w.offset == 0x10);
  CHECK(w.data == std::string("a,b\0c", 5));
  CHECK_FALSE(parse_request("vFile:pwrite:3").ok());
  CHECK_FALSE(parse_request("vFile:pwrite:x,0,").ok());
}

TEST_CASE("parse: Z0/Z1 with target-side conditions and commands") {
  auto b = parse_as<Breakpoint>("Z0,555555555160,1;X12,26000622100222ec16080219162022031327");
  CHECK(b.insert);
  CHECK(b.addr == 0x555555555160);
  REQUIRE(b.conditions.size() == 1);
  CHECK(b.conditions[0] == *from_hex("26000622100222ec16080219162022031327"));
  CHECK(b.commands.empty());
  // Several conditions back to back (as gdb sends them), or split by ';'.
  b = parse_as<Breakpoint>("Z1,400000,1;X2,2201X1,27;X1,27");
  CHECK(b.type == 1);
  CHECK(b.conditions.size() == 3);
  b = parse_as<Breakpoint>("Z0,400000,1;X2,2227;cmds:1,X2,2201X1,27");
  CHECK(b.conditions.size() == 1);
  CHECK(b.commands.size() == 2);
  CHECK(b.persist);
  b = parse_as<Breakpoint>("Z0,400000,1;cmds:0,X1,27");
  CHECK(b.conditions.empty());
  CHECK(b.commands.size() == 1);
  CHECK_FALSE(b.persist);
  b = parse_as<Breakpoint>("Z0,400000,1");
  CHECK(b.conditions.empty());
  CHECK(b.commands.empty());
}

TEST_CASE("parse: malformed breakpoint conditions and commands are errors") {
  for (const char* bad : {"Z0,400000,1;", "Z0,400000,1;X", "Z0,400000,1;X2,22", "Z0,400000,1;X2,2g27",
                          "Z0,400000,1;X0,", "Z0,400000,1;Y1,27", "Z0,400000,1;X1,27junk", "Z0,400000,1;cmds:",
                          "Z0,400000,1;cmds:2,X1,27", "Z0,400000,1;cmds:0X1,27", "Z0,400000,1;cmds:0,",
                          "Z0,400000,1;cmds:0,Z1,27", "Z2,400000,4;X1,27", "z0,400000,1;X1,27",
                          "Z0,400000,1;X1,27;", "Z0,400000,1;Xffffffffffffffffff,27",
                          "Z0,400000,1;X8000000000000000,27"}) {
    error_of(bad);
  }
}

// The client side of the RSP: requests dbgstub sends to QEMU's gdbstub and
// parsers for its replies, which are untrusted input.
#include <doctest/doctest.h>

#include <cerrno>

#include "protocol/rsp/client.h"

using namespace dbgstub;
using namespace dbgstub::rsp;
using namespace dbgstub::rsp::client;

TEST_CASE("rsp client: requests") {
  CHECK(frame_request("g") == "$g#67");
  CHECK(frame_request("X0,1:#") == "$X0,1:}\x03#9f");  // framing escapes '#'
  CHECK(supported_request({}) == "qSupported");
  CHECK(supported_request({"multiprocess+", "xmlRegisters=i386"}) == "qSupported:multiprocess+;xmlRegisters=i386");
  CHECK(set_thread_request('g', {1, 2}, true) == "Hgp1.2");
  CHECK(set_thread_request('c', {0, -1}, false) == "Hc-1");
  CHECK(set_thread_request('g', {0, 0x1a}, false) == "Hg1a");
  CHECK(read_registers_request() == "g");
  CHECK(write_registers_request(std::string("\x01\xff", 2)) == "G01ff");
  CHECK(read_register_request(0x10) == "p10");
  CHECK(write_register_request(16, std::string("\xf0\xff\0\0", 4)) == "P10=f0ff0000");
  CHECK(read_memory_request(0xffff0, 16) == "mffff0,10");
  CHECK(write_memory_request(0x1000, "ab") == "M1000,2:6162");
  CHECK(breakpoint_request(true, 0, 0xfe05b, 1) == "Z0,fe05b,1");
  CHECK(breakpoint_request(false, 2, 0x7000, 4) == "z2,7000,4");
  CHECK(xfer_read_request("features", "target.xml", 0, 0xff0) == "qXfer:features:read:target.xml:0,ff0");
  CHECK(detach_request(std::nullopt) == "D");
  CHECK(detach_request(1) == "D;1");
  CHECK(resume_request(false, 0) == "c");
  CHECK(resume_request(true, 0) == "s");
  CHECK(resume_request(false, 2) == "C02");
  CHECK(thread_extra_info_request({1, 1}, true) == "qThreadExtraInfo,p1.1");
}

TEST_CASE("rsp client: vCont requests") {
  VContAction step{'s', 0, 0, 0, ThreadId{1, 2}};
  VContAction rest{'c', 0, 0, 0, std::nullopt};
  CHECK(vcont_request({step, rest}, true) == "vCont;s:p1.2;c");
  CHECK(vcont_request({step, rest}, false) == "vCont;s:2;c");
  VContAction sig{'C', 0x0e, 0, 0, ThreadId{1, -1}};
  CHECK(vcont_request({sig}, true) == "vCont;C0e:p1.-1");
}

TEST_CASE("rsp client: OK and error replies") {
  CHECK(parse_ok_reply("OK").ok());
  auto e = parse_ok_reply("E22");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code == 0x22);
  auto text = parse_ok_reply("E.no such vCPU");
  REQUIRE_FALSE(text.ok());
  CHECK(text.error().message.find("no such vCPU") != std::string::npos);
  auto empty = parse_ok_reply("");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code == EOPNOTSUPP);
  CHECK_FALSE(parse_ok_reply("ok").ok());
  CHECK_FALSE(parse_ok_reply("OKAY").ok());
  // "E" with other than two hex digits is data, not an error.
  CHECK_FALSE(error_reply("E1").has_value());
  CHECK_FALSE(error_reply("E1234").has_value());
  CHECK_FALSE(error_reply("Ezz").has_value());
  CHECK(error_reply("E00")->code != 0);  // still an error
}

TEST_CASE("rsp client: qSupported reply") {
  auto f = parse_supported_reply("PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+;QNonStop-");
  REQUIRE(f.ok());
  CHECK(f->get("PacketSize") == "1000");
  CHECK(f->get("qXfer:features:read") == "+");
  CHECK(f->has("multiprocess"));
  CHECK_FALSE(f->has("QNonStop"));       // offered as unsupported
  CHECK_FALSE(f->has("QStartNoAckMode"));  // absent
  REQUIRE(parse_supported_reply("").ok());  // a stub without features
  CHECK(parse_supported_reply(";;multiprocess+;").ok());
  CHECK_FALSE(parse_supported_reply("multiprocess").ok());
  CHECK_FALSE(parse_supported_reply("=1").ok());
  CHECK_FALSE(parse_supported_reply("E01").ok());
}

TEST_CASE("rsp client: register replies with unavailable bytes") {
  auto r = parse_register_reply("f0ffxxxx0100");
  REQUIRE(r.ok());
  CHECK(r->bytes == std::string("\xf0\xff\0\0\x01\0", 6));
  CHECK(r->unavailable == std::vector<bool>{false, false, true, true, false, false});
  CHECK(r->any_unavailable());
  auto plain = parse_register_reply("0000000000f0ffff");
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->any_unavailable());
  CHECK(plain->bytes.size() == 8);

  CHECK_FALSE(parse_register_reply("").ok());       // unsupported
  CHECK_FALSE(parse_register_reply("abc").ok());    // odd length
  CHECK_FALSE(parse_register_reply("x0").ok());     // half unavailable
  CHECK_FALSE(parse_register_reply("zz").ok());
  CHECK(parse_register_reply("E14").error().code == 0x14);
}

TEST_CASE("rsp client: memory replies") {
  auto m = parse_memory_reply("ea5be000f0", 16);
  REQUIRE(m.ok());
  CHECK(*m == std::string("\xea\x5b\xe0\x00\xf0", 5));
  CHECK(parse_memory_reply("E14", 16).error().code == 0x14);
  CHECK_FALSE(parse_memory_reply("", 16).ok());
  CHECK_FALSE(parse_memory_reply("0g", 16).ok());
  CHECK_FALSE(parse_memory_reply("000", 16).ok());
  CHECK_FALSE(parse_memory_reply("0000", 1).ok());  // more than asked for
  CHECK(parse_memory_reply("00", 1).ok());
}

TEST_CASE("rsp client: stop replies") {
  SUBCASE("QEMU's breakpoint or step") {
    auto s = parse_stop_reply("T05thread:p01.01;");
    REQUIRE(s.ok());
    CHECK(s->kind == StopReply::Kind::Signal);
    CHECK(s->signal == 5);
    REQUIRE(s->thread);
    CHECK(*s->thread == ThreadId{1, 1});
    CHECK(s->reason == StopReply::Reason::None);
  }
  SUBCASE("watchpoints, registers, core, unknown keys") {
    auto s = parse_stop_reply("T05thread:p01.02;rwatch:0000000000007000;10:f0ff000000000000;core:1;library:;");
    REQUIRE(s.ok());
    CHECK(s->reason == StopReply::Reason::ReadWatch);
    CHECK(s->watch_addr == 0x7000);
    CHECK(s->thread->tid == 2);
    CHECK(s->core == 1u);
    REQUIRE(s->registers.size() == 1);
    CHECK(s->registers[0].first == 0x10);
    CHECK(s->registers[0].second == std::string("\xf0\xff\0\0\0\0\0\0", 8));
    CHECK(parse_stop_reply("T05watch:10;thread:1;")->reason == StopReply::Reason::Watch);
    CHECK(parse_stop_reply("T05awatch:10;")->reason == StopReply::Reason::AccessWatch);
    CHECK(parse_stop_reply("T05swbreak:;")->reason == StopReply::Reason::SwBreak);
    CHECK(parse_stop_reply("T05hwbreak:;")->reason == StopReply::Reason::HwBreak);
    // An expedited register the stub can't read is left out.
    CHECK(parse_stop_reply("T0510:xxxxxxxxxxxxxxxx;")->registers.empty());
  }
  SUBCASE("S, W and X") {
    CHECK(parse_stop_reply("S02")->signal == 2);
    auto w = parse_stop_reply("W00");
    REQUIRE(w.ok());
    CHECK(w->kind == StopReply::Kind::Exited);
    CHECK(w->exit_code == 0);
    auto wp = parse_stop_reply("W01;process:1a");
    REQUIRE(wp.ok());
    CHECK(wp->exit_code == 1);
    CHECK(wp->process == 0x1a);
    auto x = parse_stop_reply("X09");
    REQUIRE(x.ok());
    CHECK(x->kind == StopReply::Kind::Terminated);
    CHECK(x->signal == 9);
  }
  SUBCASE("malformed") {
    for (const char* bad : {"", "T", "T5", "Tzz", "T05thread", "T05thread:;", "T05thread:pz.1;", "T05watch:;",
                            "T05watch:zz;", "T05core:;", "T0510:abc;", "T0510:zz;", "T0512345:00;", "S", "S5",
                            "S0505", "W", "W0", "Wxx", "W00;pid:1", "W00;process:", "X09;process:zz",
                            "O48656c6c6f", "N", "OK", "E01"})
      CHECK_MESSAGE(!parse_stop_reply(bad).ok(), bad);
  }
}

TEST_CASE("rsp client: thread lists") {
  auto first = parse_thread_list_reply("mp01.01,p01.02");
  REQUIRE(first.ok());
  CHECK_FALSE(first->last);
  CHECK(first->threads == std::vector<ThreadId>{{1, 1}, {1, 2}});
  auto plain = parse_thread_list_reply("m1,2,3");
  REQUIRE(plain.ok());
  CHECK(plain->threads.size() == 3);
  auto end = parse_thread_list_reply("l");
  REQUIRE(end.ok());
  CHECK(end->last);
  CHECK(end->threads.empty());
  for (const char* bad : {"", "m", "m,", "m1,", "mzz", "mp1", "m-1", "m0", "x1", "E01", "lm1"})
    CHECK_MESSAGE(!parse_thread_list_reply(bad).ok(), bad);
}

TEST_CASE("rsp client: qXfer chunks and hex text") {
  auto m = parse_xfer_reply("m<target>");
  REQUIRE(m.ok());
  CHECK_FALSE(m->last);
  CHECK(m->data == "<target>");
  auto l = parse_xfer_reply("l");
  REQUIRE(l.ok());
  CHECK(l->last);
  CHECK(l->data.empty());
  CHECK_FALSE(parse_xfer_reply("").ok());
  CHECK_FALSE(parse_xfer_reply("x<").ok());
  CHECK(parse_xfer_reply("E00").error().code != 0);
  CHECK(*parse_hex_text_reply("4350552331205b68616c746564205d") == "CPU#1 [halted ]");
  CHECK_FALSE(parse_hex_text_reply("").ok());
  CHECK_FALSE(parse_hex_text_reply("4").ok());
}

TEST_CASE("rsp client: parsers survive arbitrary bytes") {
  // Every prefix of every reply shape, and some binary noise: errors are
  // fine, crashes (ASan/UBSan in CI) are not.
  std::vector<std::string> samples = {
      "T05thread:p01.01;watch:7000;10:f0ff000000000000;core:0;",
      "W00;process:1",
      "mp01.01,p01.02",
      "PacketSize=1000;qXfer:features:read+",
      "f0ffxxxx",
      std::string("T\0\xff;:\x80thread:p\xff.\0", 15),
      std::string(300, 'x'),
      "T05" + std::string(100, ';'),
      "Tff" + std::string(1000, '1') + ":00;",
  };
  for (const auto& s : samples) {
    for (std::size_t n = 0; n <= s.size(); ++n) {
      std::string_view p(s.data(), n);
      (void)parse_stop_reply(p);
      (void)parse_thread_list_reply(p);
      (void)parse_supported_reply(p);
      (void)parse_register_reply(p);
      (void)parse_memory_reply(p, 8);
      (void)parse_xfer_reply(p);
      (void)parse_hex_text_reply(p);
      (void)parse_ok_reply(p);
    }
  }
  CHECK(true);
}

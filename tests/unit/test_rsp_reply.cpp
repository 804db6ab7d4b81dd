#include <doctest/doctest.h>

#include <string>

#include "protocol/rsp/hex.h"
#include "protocol/rsp/reply.h"

using namespace dbgstub::rsp;

TEST_CASE("simple replies") {
  CHECK(reply_ok() == "OK");
  CHECK(reply_empty().empty());
  CHECK(reply_error(1) == "E01");
  CHECK(reply_error(22) == "E16");
  CHECK(reply_error(-5) == "E00");
  CHECK(reply_error(1000) == "Eff");
  CHECK(reply_error_message(1, "no such process", true) == "E.no such process");
  CHECK(reply_error_message(1, "no such process", false) == "E01");
  CHECK(reply_console_output("hi\n") == "O68690a");
}

TEST_CASE("thread id formatting") {
  CHECK(format_thread_id({0, 0x1a}, false) == "1a");
  CHECK(format_thread_id({5, 0x1a}, false) == "1a");
  CHECK(format_thread_id({0, -1}, false) == "-1");
  CHECK(format_thread_id({0xabc, 0xabd}, true) == "pabc.abd");
  CHECK(format_thread_id({-1, -1}, true) == "p-1");
  CHECK(format_thread_id({7, -1}, true) == "p7.-1");
  // Round trip through the parser.
  for (ThreadId t : {ThreadId{1, 2}, ThreadId{0x7fffffff, 0x1234}, ThreadId{3, -1}})
    CHECK(parse_thread_id(format_thread_id(t, true)) == t);
}

TEST_CASE("stop reply") {
  StopReply r;
  r.signal = 5;
  r.thread = {0x10, 0x11};
  r.registers = {{6, le_bytes(0x7ffe0010, 8)}, {0x10, le_bytes(0x401000, 8)}};
  r.extras = {{"swbreak", ""}, {"threads", "11,12"}};
  CHECK(build_stop_reply(r, true) ==
        "T05"
        "06:1000fe7f00000000;"
        "10:0010400000000000;"
        "thread:p10.11;"
        "swbreak:;"
        "threads:11,12;");
  CHECK(build_stop_reply(r, false).find("thread:11;") != std::string::npos);

  StopReply bare;
  bare.signal = 0x11;
  bare.thread = {0, 0x2a};
  CHECK(build_stop_reply(bare, false) == "T11thread:2a;");

  StopReply wide;
  wide.registers = {{0x123, "\x01"}};
  CHECK(build_stop_reply(wide, false) == "T00123:01;thread:0;");
}

TEST_CASE("exit replies") {
  CHECK(build_exit_reply(0, std::nullopt) == "W00");
  CHECK(build_exit_reply(3, 0x1f) == "W03;process:1f");
  CHECK(build_signal_exit_reply(9, std::nullopt) == "X09");
  CHECK(build_signal_exit_reply(11, 100) == "X0b;process:64");
  CHECK(build_thread_exit_reply(0, ThreadId{0x1f, 0x20}, true) == "w00;p1f.20");
  CHECK(build_thread_exit_reply(0, ThreadId{0x1f, 0x20}, false) == "w00;20");
}

TEST_CASE("thread lists") {
  CHECK(build_thread_list({}, false) == "l");
  CHECK(build_thread_list({{0, 1}, {0, 0x1a}}, false) == "m1,1a");
  CHECK(build_thread_list({{2, 2}, {2, 3}}, true) == "mp2.2,p2.3");
}

TEST_CASE("qXfer chunks") {
  std::string doc = "0123456789";
  CHECK(build_xfer_chunk(doc, 0, 4) == "m0123");
  CHECK(build_xfer_chunk(doc, 4, 6) == "l456789");
  CHECK(build_xfer_chunk(doc, 4, 100) == "l456789");
  CHECK(build_xfer_chunk(doc, 9, 1) == "l9");
  CHECK(build_xfer_chunk(doc, 10, 5) == "l");
  CHECK(build_xfer_chunk(doc, UINT64_MAX, UINT64_MAX) == "l");
  CHECK(build_xfer_chunk(doc, 0, 0) == "m");
  CHECK(build_xfer_chunk("", 0, 10) == "l");
}

TEST_CASE("qSupported and key/value replies") {
  CHECK(build_supported({"PacketSize=4000", "qXfer:features:read+", "multiprocess+"}) ==
        "PacketSize=4000;qXfer:features:read+;multiprocess+");
  CHECK(build_supported({}).empty());
  CHECK(build_key_values({{"pid", "1f"}, {"endian", "little"}}) == "pid:1f;endian:little;");
  CHECK(build_key_values({}).empty());
}

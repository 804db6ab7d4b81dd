// The client side of the GDB remote protocol: requests dbgstub sends to
// another stub (QEMU's gdbstub, for a VM target) and parsers for that
// stub's replies. Bytes only, no sockets.
//
// Replies come from a process dbgstub does not control, so every parser
// takes untrusted bytes, never throws, never crashes, never allocates in
// proportion to a number found in the input, and returns an Error saying
// what was wrong.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "protocol/rsp/request.h"

namespace dbgstub::rsp::client {

// ---- requests (payloads; frame them with frame_request) -----------------

// "$payload#xx", escaping as framing.h's frame_packet does.
std::string frame_request(std::string_view payload);

// "qSupported:f1;f2;..." ("qSupported" alone for no features).
std::string supported_request(const std::vector<std::string>& features);
// "Hg<id>" / "Hc<id>".
std::string set_thread_request(char op, const ThreadId& thread, bool multiprocess);
std::string read_registers_request();                               // "g"
std::string write_registers_request(std::string_view bytes);        // "G<hex>"
std::string read_register_request(int regno);                       // "p<n>"
std::string write_register_request(int regno, std::string_view bytes);  // "P<n>=<hex>"
std::string read_memory_request(uint64_t addr, uint64_t length);    // "m<addr>,<len>"
std::string write_memory_request(uint64_t addr, std::string_view bytes);  // "M<addr>,<len>:<hex>"
// "Z<type>,<addr>,<kind>" / "z...".
std::string breakpoint_request(bool insert, int type, uint64_t addr, uint64_t kind);
// "qXfer:<object>:read:<annex>:<offset>,<length>".
std::string xfer_read_request(std::string_view object, std::string_view annex, uint64_t offset, uint64_t length);
// "vCont;a[:id];a[:id]..." from parse-side actions (signals are GDB numbers).
std::string vcont_request(const std::vector<VContAction>& actions, bool multiprocess);
// "c" / "s" / "C<sig>" / "S<sig>": the legacy resume of the Hc thread.
std::string resume_request(bool step, int gdb_signal);
// "D" / "D;<pid>".
std::string detach_request(std::optional<int64_t> pid);
// "qThreadExtraInfo,<id>".
std::string thread_extra_info_request(const ThreadId& thread, bool multiprocess);
// The interrupt byte: sent raw, outside any packet.
inline constexpr char kInterruptByte = 0x03;

// ---- replies -------------------------------------------------------------

// "O<hex>": console output the stub sends while the target runs ("OK" is
// not one).
inline bool is_console_output(std::string_view reply) {
  return reply.size() > 1 && reply[0] == 'O' && reply != "OK";
}

// "Enn" or "E.message" as an Error; nullopt for anything else.
std::optional<Error> error_reply(std::string_view reply);

// A reply that must be "OK": "Enn" gives that error, "" says the request
// is not supported, anything else is unexpected.
Status parse_ok_reply(std::string_view reply);

// qSupported reply: "name+", "name-", "name=value", separated by ';'.
struct SupportedFeatures {
  std::vector<std::pair<std::string, std::string>> features;  // name -> "+", "-" or the value
  // "+" or the value, nullopt when absent or "-".
  std::optional<std::string> get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }
};
Result<SupportedFeatures> parse_supported_reply(std::string_view reply);

// 'g' / 'p' replies: hex bytes in target order, "xx" for a byte the stub
// can't read. `unavailable` has one entry per byte: true where it was 'x'
// (those bytes read as 0 in `bytes`).
struct RegisterBytes {
  std::string bytes;
  std::vector<bool> unavailable;
  bool any_unavailable() const;
};
Result<RegisterBytes> parse_register_reply(std::string_view reply);

// 'm' reply: hex bytes, at most `max_length` of them (a stub that sends
// more than asked for is broken). An empty reply is an error too: gdb's
// stubs answer a readable zero-length read with "", which we never ask.
Result<std::string> parse_memory_reply(std::string_view reply, uint64_t max_length);

// Stop replies: "Sxx", "Txx n:r;...;thread:id;core:c;swbreak:;watch:addr;...",
// "Wxx[;process:pid]", "Xxx[;process:pid]".
struct StopReply {
  enum class Kind { Signal, Exited, Terminated };
  enum class Reason { None, SwBreak, HwBreak, Watch, ReadWatch, AccessWatch };
  Kind kind = Kind::Signal;
  int signal = 0;        // GDB's number: Signal and Terminated
  int exit_code = 0;     // Exited
  Reason reason = Reason::None;
  uint64_t watch_addr = 0;
  std::optional<ThreadId> thread;   // "thread:"
  std::optional<int64_t> process;   // W/X ";process:"
  std::optional<uint64_t> core;     // "core:"
  std::vector<std::pair<int, std::string>> registers;  // expedited: regno -> bytes
};
Result<StopReply> parse_stop_reply(std::string_view reply);

// qfThreadInfo / qsThreadInfo: "m<id>,<id>..." (more may follow) or "l".
struct ThreadListChunk {
  std::vector<ThreadId> threads;
  bool last = false;
};
Result<ThreadListChunk> parse_thread_list_reply(std::string_view reply);

// qXfer read: "m<data>" (more follows) or "l<data>" (the end). Framing has
// already undone the binary escapes.
struct XferChunk {
  std::string data;
  bool last = false;
};
Result<XferChunk> parse_xfer_reply(std::string_view reply);

// qThreadExtraInfo: hex-encoded text.
Result<std::string> parse_hex_text_reply(std::string_view reply);

}  // namespace dbgstub::rsp::client

// Requests to another stub and parsers for its replies. See client.h: the
// replies are untrusted input.
#include "protocol/rsp/client.h"

#include <cerrno>
#include <limits>

#include "protocol/rsp/framing.h"
#include "protocol/rsp/hex.h"
#include "protocol/rsp/reply.h"

namespace dbgstub::rsp::client {
namespace {

using sv = std::string_view;

// Register numbers in replies: far beyond any real layout (x86-64 with
// AVX-512 has ~150) is garbage, and bounding it keeps ints safe.
constexpr uint64_t kMaxRegno = 0xffff;
// Thread lists: a stub listing more threads than this in one reply is broken.
constexpr std::size_t kMaxThreadsPerReply = 1 << 16;

Error bad_reply(sv what, sv reply) {
  std::string msg(what);
  msg += ": '";
  // Enough of the reply to recognise it in a log; never its whole length.
  for (char c : reply.substr(0, 48)) {
    auto u = static_cast<unsigned char>(c);
    msg += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  if (reply.size() > 48) msg += "...";
  msg += "'";
  return make_error(EPROTO, std::move(msg));
}

Error unsupported(sv request) {
  return make_error(EOPNOTSUPP, std::string("the stub does not support ") + std::string(request));
}

std::optional<int> parse_u8(sv s) {
  if (s.size() != 2) return std::nullopt;
  auto v = parse_hex_u64(s);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

bool all_hex(sv s) {
  if (s.empty()) return false;
  for (char c : s)
    if (hex_digit(c) < 0) return false;
  return true;
}

// "W00" / "X09;process:1a"
Result<StopReply> parse_exit(sv reply) {
  StopReply r;
  r.kind = reply[0] == 'W' ? StopReply::Kind::Exited : StopReply::Kind::Terminated;
  sv rest = reply.substr(1);
  sv code = rest.substr(0, rest.find(';'));
  auto v = parse_u8(code);
  if (!v) return bad_reply("bad exit status", reply);
  if (r.kind == StopReply::Kind::Exited) r.exit_code = *v;
  else r.signal = *v;
  if (code.size() < rest.size()) {
    sv tail = rest.substr(code.size() + 1);
    constexpr sv kProcess = "process:";
    if (!tail.starts_with(kProcess)) return bad_reply("bad exit reply", reply);
    auto pid = parse_hex_u64(tail.substr(kProcess.size()));
    if (!pid || *pid > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return bad_reply("bad process id in exit reply", reply);
    r.process = static_cast<int64_t>(*pid);
  }
  return r;
}

}  // namespace

// ---- requests --------------------------------------------------------------

std::string frame_request(std::string_view payload) { return frame_packet(payload); }

std::string supported_request(const std::vector<std::string>& features) {
  std::string out = "qSupported";
  for (std::size_t i = 0; i < features.size(); ++i) {
    out += i == 0 ? ':' : ';';
    out += features[i];
  }
  return out;
}

std::string set_thread_request(char op, const ThreadId& thread, bool multiprocess) {
  return std::string("H") + op + format_thread_id(thread, multiprocess);
}

std::string read_registers_request() { return "g"; }

std::string write_registers_request(std::string_view bytes) { return "G" + to_hex(bytes); }

std::string read_register_request(int regno) { return "p" + hex_u64(static_cast<uint64_t>(regno < 0 ? 0 : regno)); }

std::string write_register_request(int regno, std::string_view bytes) {
  return "P" + hex_u64(static_cast<uint64_t>(regno < 0 ? 0 : regno)) + "=" + to_hex(bytes);
}

std::string read_memory_request(uint64_t addr, uint64_t length) {
  return "m" + hex_u64(addr) + "," + hex_u64(length);
}

std::string write_memory_request(uint64_t addr, std::string_view bytes) {
  return "M" + hex_u64(addr) + "," + hex_u64(bytes.size()) + ":" + to_hex(bytes);
}

std::string breakpoint_request(bool insert, int type, uint64_t addr, uint64_t kind) {
  return std::string(1, insert ? 'Z' : 'z') + std::to_string(type) + "," + hex_u64(addr) + "," + hex_u64(kind);
}

std::string xfer_read_request(std::string_view object, std::string_view annex, uint64_t offset, uint64_t length) {
  std::string out = "qXfer:";
  out += object;
  out += ":read:";
  out += annex;
  out += ":" + hex_u64(offset) + "," + hex_u64(length);
  return out;
}

std::string vcont_request(const std::vector<VContAction>& actions, bool multiprocess) {
  std::string out = "vCont";
  for (const auto& a : actions) {
    out += ';';
    out += a.action;
    if (a.action == 'C' || a.action == 'S') out += hex_u8(static_cast<uint8_t>(a.signal & 0xff));
    if (a.thread) out += ":" + format_thread_id(*a.thread, multiprocess);
  }
  return out;
}

std::string resume_request(bool step, int gdb_signal) {
  if (gdb_signal == 0) return step ? "s" : "c";
  return std::string(1, step ? 'S' : 'C') + hex_u8(static_cast<uint8_t>(gdb_signal & 0xff));
}

std::string detach_request(std::optional<int64_t> pid) {
  if (!pid) return "D";
  return "D;" + hex_u64(static_cast<uint64_t>(*pid < 0 ? 0 : *pid));
}

std::string thread_extra_info_request(const ThreadId& thread, bool multiprocess) {
  return "qThreadExtraInfo," + format_thread_id(thread, multiprocess);
}

// ---- replies ---------------------------------------------------------------

std::optional<Error> error_reply(std::string_view reply) {
  // As gdb reads them: "E" and exactly two hex digits (a longer reply
  // starting with E is data), or "E." and a message.
  if (reply.size() < 2 || reply[0] != 'E') return std::nullopt;
  if (reply[1] == '.') {
    std::string text(reply.substr(2, 200));
    return make_error(EIO, text.empty() ? std::string("the stub reported an error") : "the stub says: " + text);
  }
  if (reply.size() != 3) return std::nullopt;
  auto code = parse_u8(reply.substr(1));
  if (!code) return std::nullopt;
  return make_error(*code == 0 ? EIO : *code, "the stub replied " + std::string(reply));
}

Status parse_ok_reply(std::string_view reply) {
  if (reply == "OK") return ok_status();
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return unsupported("this request");
  return bad_reply("expected OK", reply);
}

std::optional<std::string> SupportedFeatures::get(std::string_view name) const {
  for (const auto& [n, v] : features)
    if (n == name) return v == "-" ? std::nullopt : std::optional<std::string>(v);
  return std::nullopt;
}

Result<SupportedFeatures> parse_supported_reply(std::string_view reply) {
  if (auto e = error_reply(reply)) return *e;
  SupportedFeatures out;
  if (reply.empty()) return out;  // a stub that knows no qSupported: no features
  while (!reply.empty()) {
    auto semi = reply.find(';');
    sv item = reply.substr(0, semi);
    reply = semi == sv::npos ? sv{} : reply.substr(semi + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq != sv::npos) {
      if (eq == 0) return bad_reply("bad qSupported feature", item);
      out.features.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    } else if (item.size() >= 2 && (item.back() == '+' || item.back() == '-')) {
      out.features.emplace_back(std::string(item.substr(0, item.size() - 1)), std::string(1, item.back()));
    } else {
      return bad_reply("bad qSupported feature", item);
    }
  }
  return out;
}

bool RegisterBytes::any_unavailable() const {
  for (bool u : unavailable)
    if (u) return true;
  return false;
}

Result<RegisterBytes> parse_register_reply(std::string_view reply) {
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return unsupported("reading registers");
  if (reply.size() % 2 != 0) return bad_reply("register reply of odd length", reply);
  RegisterBytes out;
  out.bytes.reserve(reply.size() / 2);
  out.unavailable.reserve(reply.size() / 2);
  for (std::size_t i = 0; i < reply.size(); i += 2) {
    char hi = reply[i], lo = reply[i + 1];
    if (hi == 'x' && lo == 'x') {
      out.bytes.push_back('\0');
      out.unavailable.push_back(true);
      continue;
    }
    int h = hex_digit(hi), l = hex_digit(lo);
    if (h < 0 || l < 0) return bad_reply("bad hex in register reply", reply.substr(i));
    out.bytes.push_back(static_cast<char>((h << 4) | l));
    out.unavailable.push_back(false);
  }
  return out;
}

Result<std::string> parse_memory_reply(std::string_view reply, uint64_t max_length) {
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return make_error(EIO, "the stub returned no memory");
  if (reply.size() / 2 > max_length) return bad_reply("memory reply longer than asked for", reply);
  auto bytes = from_hex(reply);
  if (!bytes) return bad_reply("bad hex in memory reply", reply);
  return std::move(*bytes);
}

Result<StopReply> parse_stop_reply(std::string_view reply) {
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return bad_reply("empty stop reply", reply);
  switch (reply[0]) {
    case 'W':
    case 'X': return parse_exit(reply);
    case 'S': {
      auto sig = parse_u8(reply.substr(1));
      if (!sig) return bad_reply("bad signal in stop reply", reply);
      StopReply r;
      r.signal = *sig;
      return r;
    }
    case 'T': break;
    case 'O': return bad_reply("console output, not a stop reply", reply);
    default: return bad_reply("not a stop reply", reply);
  }
  StopReply r;
  auto sig = parse_u8(reply.substr(1, 2));
  if (!sig) return bad_reply("bad signal in stop reply", reply);
  r.signal = *sig;
  sv rest = reply.substr(3);
  while (!rest.empty()) {
    auto semi = rest.find(';');
    sv item = rest.substr(0, semi);
    rest = semi == sv::npos ? sv{} : rest.substr(semi + 1);
    if (item.empty()) continue;
    auto colon = item.find(':');
    if (colon == sv::npos) return bad_reply("stop reply field without ':'", item);
    sv key = item.substr(0, colon), value = item.substr(colon + 1);
    if (all_hex(key)) {
      // An expedited register "nn:bytes"; unavailable ("xx") bytes are
      // dropped with the register: the target reads it again if needed.
      auto regno = parse_hex_u64(key);
      if (!regno || *regno > kMaxRegno) return bad_reply("bad register number in stop reply", item);
      auto bytes = parse_register_reply(value);
      if (!bytes) return bad_reply("bad register value in stop reply", item);
      if (!bytes->any_unavailable()) r.registers.emplace_back(static_cast<int>(*regno), std::move(bytes->bytes));
    } else if (key == "thread") {
      auto t = parse_thread_id(value);
      if (!t) return bad_reply("bad thread id in stop reply", item);
      r.thread = *t;
    } else if (key == "core") {
      auto c = parse_hex_u64(value);
      if (!c) return bad_reply("bad core in stop reply", item);
      r.core = *c;
    } else if (key == "watch" || key == "rwatch" || key == "awatch") {
      auto a = parse_hex_u64(value);
      if (!a) return bad_reply("bad watchpoint address in stop reply", item);
      r.watch_addr = *a;
      r.reason = key == "watch" ? StopReply::Reason::Watch
                 : key == "rwatch" ? StopReply::Reason::ReadWatch
                                   : StopReply::Reason::AccessWatch;
    } else if (key == "swbreak") {
      r.reason = StopReply::Reason::SwBreak;
    } else if (key == "hwbreak") {
      r.reason = StopReply::Reason::HwBreak;
    }
    // Other keys (library, fork, exec, create, ...) mean nothing for a
    // machine; the protocol says to ignore what one doesn't know.
  }
  return r;
}

Result<ThreadListChunk> parse_thread_list_reply(std::string_view reply) {
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return unsupported("qfThreadInfo");
  ThreadListChunk out;
  if (reply == "l") {
    out.last = true;
    return out;
  }
  if (reply[0] != 'm' || reply.size() < 2) return bad_reply("bad thread list reply", reply);
  sv rest = reply.substr(1);
  while (true) {
    auto comma = rest.find(',');
    auto t = parse_thread_id(rest.substr(0, comma));
    if (!t) return bad_reply("bad thread id in thread list", rest);
    if (t->tid <= 0) return bad_reply("thread list names no single thread", rest);
    if (out.threads.size() >= kMaxThreadsPerReply) return bad_reply("thread list too long", reply);
    out.threads.push_back(*t);
    if (comma == sv::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

Result<XferChunk> parse_xfer_reply(std::string_view reply) {
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return unsupported("this qXfer object");
  if (reply[0] != 'm' && reply[0] != 'l') return bad_reply("bad qXfer reply", reply);
  return XferChunk{std::string(reply.substr(1)), reply[0] == 'l'};
}

Result<std::string> parse_hex_text_reply(std::string_view reply) {
  if (auto e = error_reply(reply)) return *e;
  if (reply.empty()) return unsupported("this query");
  auto text = from_hex(reply);
  if (!text) return bad_reply("bad hex text", reply);
  return std::move(*text);
}

}  // namespace dbgstub::rsp::client

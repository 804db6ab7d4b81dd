// Request parsing. Every input is untrusted: all numbers are range checked
// before use, nothing throws, and allocations are bounded by the payload
// size (which the framer bounds) rather than by numbers found in it.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>

#include "protocol/agent/agent_expr.h"
#include "protocol/rsp/hex.h"
#include "protocol/rsp/request.h"

namespace dbgstub::rsp {
namespace {

using sv = std::string_view;

constexpr uint64_t kMaxSignal = 255;  // signals travel as one hex byte
constexpr uint64_t kMaxPositiveId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

Error bad(sv packet, sv what) {
  std::string msg(packet);
  msg += ": ";
  msg += what;
  return make_error(EINVAL, std::move(msg));
}

Result<Request> unsupported(sv name) { return Request{Unsupported{std::string(name)}}; }

// Splits at the first `delim`; nullopt if it isn't there.
std::optional<std::pair<sv, sv>> split_once(sv s, char delim) {
  auto pos = s.find(delim);
  if (pos == sv::npos) return std::nullopt;
  return std::pair{s.substr(0, pos), s.substr(pos + 1)};
}

std::vector<sv> split_all(sv s, char delim) {
  std::vector<sv> parts;
  while (true) {
    auto pos = s.find(delim);
    parts.push_back(s.substr(0, pos));
    if (pos == sv::npos) break;
    s.remove_prefix(pos + 1);
  }
  return parts;
}

std::optional<uint64_t> parse_dec_u64(sv s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    auto d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// A process id written in hex: positive and representable as int64.
std::optional<int64_t> parse_hex_pid(sv s) {
  auto v = parse_hex_u64(s);
  if (!v || *v == 0 || *v > kMaxPositiveId) return std::nullopt;
  return static_cast<int64_t>(*v);
}

std::optional<int> parse_signal(sv s) {
  auto v = parse_hex_u64(s);
  if (!v || *v > kMaxSignal) return std::nullopt;
  return static_cast<int>(*v);
}

// One component of a thread id: "-1" (all) or a non-negative hex number.
std::optional<int64_t> parse_id_part(sv s) {
  if (s == "-1") return -1;
  auto v = parse_hex_u64(s);
  if (!v || *v > kMaxPositiveId) return std::nullopt;
  return static_cast<int64_t>(*v);
}

struct AddrLen {
  uint64_t addr = 0, length = 0;
};

// "addr,length" with the length bounded by kMaxTransfer.
Result<AddrLen> parse_addr_len(sv packet, sv s) {
  auto parts = split_once(s, ',');
  if (!parts) return bad(packet, "expected addr,length");
  auto addr = parse_hex_u64(parts->first);
  if (!addr) return bad(packet, "bad address");
  auto len = parse_hex_u64(parts->second);
  if (!len) return bad(packet, "bad length");
  if (*len > kMaxTransfer) return bad(packet, "length exceeds transfer limit");
  return AddrLen{*addr, *len};
}

// lldb's QThreadSuffixSupported appends ";thread:TID;" to register packets.
// Returns the packet without the suffix; `thread` is set if one was present.
Result<sv> strip_thread_suffix(sv packet, sv s, std::optional<ThreadId>& thread) {
  constexpr sv kSuffix = ";thread:";
  auto pos = s.find(kSuffix);
  if (pos == sv::npos) return s;
  sv id = s.substr(pos + kSuffix.size());
  if (id.ends_with(';')) id.remove_suffix(1);
  thread = parse_thread_id(id);
  if (!thread) return bad(packet, "bad thread suffix");
  return s.substr(0, pos);
}

// ---- single-letter packets ------------------------------------------------

Result<Request> parse_resume(sv p) {
  Resume r;
  r.step = p[0] == 's' || p[0] == 'S';
  sv rest = p.substr(1);
  sv name = p.substr(0, 1);
  if (p[0] == 'C' || p[0] == 'S') {
    auto semi = rest.find(';');
    auto sig = parse_signal(rest.substr(0, semi));
    if (!sig) return bad(name, "bad signal");
    r.signal = *sig;
    rest = semi == sv::npos ? sv{} : rest.substr(semi + 1);
    if (semi != sv::npos && rest.empty()) return bad(name, "missing address");
  }
  if (!rest.empty()) {
    auto addr = parse_hex_u64(rest);
    if (!addr) return bad(name, "bad address");
    r.addr = *addr;
  }
  return Request{r};
}

Result<Request> parse_detach(sv p) {
  if (p == "D") return Request{Detach{}};
  if (!p.starts_with("D;")) return bad("D", "unexpected arguments");
  auto pid = parse_hex_pid(p.substr(2));
  if (!pid) return bad("D", "bad pid");
  return Request{Detach{*pid}};
}

Result<Request> parse_read_all_registers(sv p) {
  std::optional<ThreadId> thread;
  auto rest = strip_thread_suffix("g", p, thread);
  if (!rest) return rest.error();
  if (*rest != "g") return bad("g", "unexpected arguments");
  return Request{ReadAllRegisters{thread}};
}

Result<Request> parse_write_all_registers(sv p) {
  std::optional<ThreadId> thread;
  auto rest = strip_thread_suffix("G", p.substr(1), thread);
  if (!rest) return rest.error();
  auto data = from_hex(*rest);
  if (!data) return bad("G", "bad hex data");
  return Request{WriteAllRegisters{std::move(*data), thread}};
}

Result<Request> parse_read_register(sv p) {
  std::optional<ThreadId> thread;
  auto rest = strip_thread_suffix("p", p.substr(1), thread);
  if (!rest) return rest.error();
  auto regno = parse_hex_u64(*rest);
  if (!regno) return bad("p", "bad register number");
  return Request{ReadRegister{*regno, thread}};
}

Result<Request> parse_write_register(sv p) {
  std::optional<ThreadId> thread;
  auto rest = strip_thread_suffix("P", p.substr(1), thread);
  if (!rest) return rest.error();
  auto parts = split_once(*rest, '=');
  if (!parts) return bad("P", "expected regno=value");
  auto regno = parse_hex_u64(parts->first);
  if (!regno) return bad("P", "bad register number");
  auto value = from_hex(parts->second);
  if (!value || value->empty()) return bad("P", "bad hex value");
  return Request{WriteRegister{*regno, std::move(*value), thread}};
}

Result<Request> parse_read_memory(sv p) {
  sv name = p.substr(0, 1);
  auto al = parse_addr_len(name, p.substr(1));
  if (!al) return al.error();
  return Request{ReadMemory{al->addr, al->length, p[0] == 'x'}};
}

// M addr,len:hex and X addr,len:binary. The length is checked against the
// limit before the data is looked at, and the data must match it exactly.
Result<Request> parse_write_memory(sv p) {
  sv name = p.substr(0, 1);
  auto parts = split_once(p.substr(1), ':');
  if (!parts) return bad(name, "missing ':' before data");
  auto al = parse_addr_len(name, parts->first);
  if (!al) return al.error();
  sv data = parts->second;
  if (p[0] == 'X') {
    if (data.size() != al->length) return bad(name, "data length does not match");
    return Request{WriteMemory{al->addr, std::string(data)}};
  }
  if (data.size() != al->length * 2) return bad(name, "data length does not match");
  auto bytes = from_hex(data);
  if (!bytes) return bad(name, "bad hex data");
  return Request{WriteMemory{al->addr, std::move(*bytes)}};
}

// One or more agent expressions back to back ("X3,220027X2,2227"), as GDB
// concatenates them; a ';' between them is accepted too (gdbserver does).
bool parse_expressions(sv& s, std::vector<std::string>& out) {
  do {
    if (!s.empty() && s[0] == ';' && s.size() > 1 && s[1] == 'X') s.remove_prefix(1);
    auto e = agent::parse_expression(s);
    if (!e) return false;
    out.push_back(std::move(*e));
  } while (!s.empty() && (s[0] == 'X' || (s[0] == ';' && s.size() > 1 && s[1] == 'X')));
  return true;
}

// Z/z type,addr,kind[;cond_list][;cmds:persist,cmd_list]: conditions and
// commands are agent expressions (protocol/agent), only on Z0/Z1.
Result<Request> parse_breakpoint(sv p) {
  sv name = p.substr(0, 1);
  sv body = p.substr(1);
  auto semi = body.find(';');
  sv options = semi == sv::npos ? sv() : body.substr(semi);
  body = body.substr(0, semi);
  auto fields = split_all(body, ',');
  if (fields.size() != 3) return bad(name, "expected type,addr,kind");
  auto type = parse_hex_u64(fields[0]);
  if (!type || *type > 4) return bad(name, "bad breakpoint type");
  auto addr = parse_hex_u64(fields[1]);
  if (!addr) return bad(name, "bad address");
  auto kind = parse_hex_u64(fields[2]);
  if (!kind) return bad(name, "bad kind");
  Breakpoint b{p[0] == 'Z', static_cast<int>(*type), *addr, *kind, {}, {}, false};
  if (!options.empty() && (!b.insert || b.type > 1)) return bad(name, "conditions only on Z0/Z1");
  while (!options.empty()) {
    options.remove_prefix(1);  // ';'
    if (!options.empty() && options[0] == 'X') {
      if (!parse_expressions(options, b.conditions)) return bad(name, "bad condition");
    } else if (options.substr(0, 5) == "cmds:") {
      options.remove_prefix(5);
      if (options.size() < 2 || (options[0] != '0' && options[0] != '1') || options[1] != ',')
        return bad(name, "bad cmds persistence");
      b.persist = options[0] == '1';
      options.remove_prefix(2);
      if (!parse_expressions(options, b.commands)) return bad(name, "bad command");
    } else {
      return bad(name, "bad breakpoint option");
    }
    if (!options.empty() && options[0] != ';') return bad(name, "junk after breakpoint option");
  }
  return Request{std::move(b)};
}

Result<Request> parse_set_thread(sv p) {
  if (p.size() < 3) return bad("H", "missing thread id");
  char op = p[1];
  if (op != 'g' && op != 'c') return bad("H", "bad operation");
  auto t = parse_thread_id(p.substr(2));
  if (!t) return bad("H", "bad thread id");
  return Request{SetThread{op, *t}};
}

Result<Request> parse_thread_alive(sv p) {
  auto t = parse_thread_id(p.substr(1));
  if (!t) return bad("T", "bad thread id");
  return Request{ThreadAlive{*t}};
}

// ---- q packets ------------------------------------------------------------

Result<Request> parse_xfer(sv p) {
  constexpr sv kName = "qXfer";
  auto obj = split_once(p.substr(kName.size() + 1), ':');
  if (!obj || obj->first.empty()) return bad(kName, "missing object");
  auto op = split_once(obj->second, ':');
  if (!op) return bad(kName, "missing operation");
  if (op->first == "write") {
    // annex:offset:data; the data (binary) may hold any byte, ':' too.
    auto annex = split_once(op->second, ':');
    if (!annex) return bad(kName, "missing annex");
    auto off = split_once(annex->second, ':');
    if (!off) return bad(kName, "missing offset");
    auto offset = parse_hex_u64(off->first);
    if (!offset) return bad(kName, "bad offset");
    if (off->second.size() > kMaxTransfer) return bad(kName, "too much data");
    return Request{XferWrite{std::string(obj->first), std::string(annex->first), *offset, std::string(off->second)}};
  }
  if (op->first != "read") {
    // Other operations are legal packets we don't implement.
    std::string name = "qXfer:" + std::string(obj->first) + ":" + std::string(op->first);
    return unsupported(name);
  }
  // The annex itself may contain ':', the offset,length never does.
  sv rest = op->second;
  auto last = rest.rfind(':');
  if (last == sv::npos) return bad(kName, "missing annex");
  auto al = parse_addr_len(kName, rest.substr(last + 1));
  if (!al) return al.error();
  return Request{XferRead{std::string(obj->first), std::string(rest.substr(0, last)), al->addr, al->length}};
}

Result<Request> parse_supported(sv p) {
  QSupported q;
  if (p.size() > 10) {  // "qSupported:..."
    for (sv f : split_all(p.substr(11), ';'))
      if (!f.empty()) q.features.emplace_back(f);
  }
  return Request{std::move(q)};
}

Result<Request> parse_attached(sv p) {
  if (p == "qAttached") return Request{QueryAttached{}};
  auto pid = parse_hex_pid(p.substr(10));
  if (!pid) return bad("qAttached", "bad pid");
  return Request{QueryAttached{*pid}};
}

Result<Request> parse_monitor(sv p) {
  auto cmd = from_hex(p.substr(6));  // after "qRcmd,"
  if (!cmd) return bad("qRcmd", "bad hex command");
  return Request{MonitorCommand{std::move(*cmd)}};
}

// lldb writes this pid in decimal ("qProcessInfoPID:%d").
Result<Request> parse_process_info_pid(sv p) {
  auto pid = parse_dec_u64(p.substr(16));
  if (!pid || *pid == 0 || *pid > kMaxPositiveId) return bad("qProcessInfoPID", "bad pid");
  return Request{QueryProcessInfo{static_cast<int64_t>(*pid)}};
}

Result<Request> parse_q(sv p) {
  if (p == "qC") return Request{QueryCurrentThread{}};
  if (p == "qfThreadInfo") return Request{ThreadInfoFirst{}};
  if (p == "qsThreadInfo") return Request{ThreadInfoNext{}};
  if (p == "qOffsets") return Request{QueryOffsets{}};
  if (p == "qTStatus") return Request{QueryTStatus{}};
  if (p == "qHostInfo") return Request{QueryHostInfo{}};
  if (p == "qProcessInfo") return Request{QueryProcessInfo{}};
  if (p == "qGetWorkingDir") return Request{QueryWorkingDir{}};
  if (p == "qSupported" || p.starts_with("qSupported:")) return parse_supported(p);
  if (p == "qAttached" || p.starts_with("qAttached:")) return parse_attached(p);
  if (p.starts_with("qXfer:")) return parse_xfer(p);
  if (p.starts_with("qRcmd,")) return parse_monitor(p);
  if (p.starts_with("qSymbol:")) return Request{QuerySymbol{std::string(p.substr(8))}};
  if (p.starts_with("qProcessInfoPID:")) return parse_process_info_pid(p);
  if (p.starts_with("qGetTLSAddr:")) {
    auto parts = split_all(p.substr(12), ',');
    if (parts.size() != 3) return bad("qGetTLSAddr", "expected thread,offset,lm");
    auto t = parse_thread_id(parts[0]);
    auto offset = parse_hex_u64(parts[1]);
    auto lm = parse_hex_u64(parts[2]);
    if (!t || !offset || !lm) return bad("qGetTLSAddr", "bad thread, offset or lm");
    return Request{QueryTlsAddress{*t, *offset, *lm}};
  }
  if (p.starts_with("qMemoryRegionInfo")) {
    auto addr = p.starts_with("qMemoryRegionInfo:") ? parse_hex_u64(p.substr(18)) : std::nullopt;
    if (!addr) return bad("qMemoryRegionInfo", "bad address");
    return Request{QueryMemoryRegionInfo{*addr}};
  }
  if (p.starts_with("qRegisterInfo")) {
    auto regno = parse_hex_u64(p.substr(13));
    if (!regno) return bad("qRegisterInfo", "bad register number");
    return Request{QueryRegisterInfo{*regno}};
  }
  if (p.starts_with("qThreadStopInfo")) {
    auto t = parse_thread_id(p.substr(15));
    if (!t) return bad("qThreadStopInfo", "bad thread id");
    return Request{QueryThreadStopInfo{*t}};
  }
  // Known packets with a malformed shape name themselves in the error.
  for (sv known : {"qXfer", "qRcmd", "qSymbol", "qProcessInfoPID", "qGetTLSAddr"})
    if (p == known) return bad(known, "missing arguments");
  return unsupported(p.substr(0, p.find_first_of(":,;")));
}

// ---- Q packets ------------------------------------------------------------

// Hex signal numbers separated by ';'. GDB writes no trailing ';', but an
// empty entry is harmless so it is skipped.
std::optional<std::vector<int>> parse_signal_list(sv s) {
  std::vector<int> signals;
  if (s.empty()) return signals;
  for (sv part : split_all(s, ';')) {
    if (part.empty()) continue;
    auto sig = parse_signal(part);
    if (!sig) return std::nullopt;
    signals.push_back(*sig);
  }
  return signals;
}

struct FlagSpec {
  sv name;
  bool has_value;
};

// Boolean settings; those without a value just switch something on.
constexpr FlagSpec kFlags[] = {
    {"QDisableRandomization", true}, {"QStartupWithShell", true},       {"QNonStop", true},
    {"QListThreadsInStopReply", false}, {"QThreadSuffixSupported", false}, {"QEnableErrorStrings", false},
    {"QThreadEvents", true},
};

Result<Request> parse_flag(const FlagSpec& f, sv arg, bool has_arg) {
  if (!f.has_value) {
    if (has_arg) return bad(f.name, "unexpected value");
    return Request{SetFlag{std::string(f.name), true}};
  }
  if (!has_arg) return bad(f.name, "missing value");
  if (arg != "0" && arg != "1") return bad(f.name, "value must be 0 or 1");
  return Request{SetFlag{std::string(f.name), arg == "1"}};
}

// "0", "1" (every syscall) or "1;hex;hex..." (these syscall numbers).
Result<Request> parse_catch_syscalls(sv arg, bool has_arg) {
  constexpr sv kName = "QCatchSyscalls";
  if (!has_arg) return bad(kName, "missing value");
  if (arg == "0") return Request{CatchSyscalls{}};
  if (arg.empty() || arg[0] != '1' || (arg.size() > 1 && arg[1] != ';'))
    return bad(kName, "value must be 0, 1 or 1;SYSNO...");
  CatchSyscalls c;
  c.enabled = true;
  if (arg.size() > 1) {
    for (sv part : split_all(arg.substr(2), ';')) {
      auto n = parse_hex_u64(part);
      if (!n || *n > static_cast<uint64_t>(std::numeric_limits<int>::max())) return bad(kName, "bad syscall number");
      c.syscalls.push_back(static_cast<int>(*n));
    }
  }
  return Request{std::move(c)};
}

Result<Request> parse_environment_set(sv hex) {
  constexpr sv kName = "QEnvironmentHexEncoded";
  auto text = from_hex(hex);
  if (!text) return bad(kName, "bad hex");
  auto parts = split_once(*text, '=');
  if (!parts || parts->first.empty()) return bad(kName, "expected NAME=value");
  return Request{SetEnvironment{std::string(parts->first), std::string(parts->second)}};
}

Result<Request> parse_environment_unset(sv hex) {
  auto name = from_hex(hex);
  if (!name || name->empty()) return bad("QEnvironmentUnset", "bad variable name");
  SetEnvironment e;
  e.name = std::move(*name);
  e.unset = true;
  return Request{std::move(e)};
}

Result<Request> parse_Q(sv p) {
  if (p == "QStartNoAckMode") return Request{StartNoAckMode{}};
  if (p == "QEnvironmentReset") {
    SetEnvironment e;
    e.reset = true;
    return Request{std::move(e)};
  }
  auto colon = p.find(':');
  sv name = p.substr(0, colon);
  bool has_arg = colon != sv::npos;
  sv arg = has_arg ? p.substr(colon + 1) : sv{};

  for (const auto& f : kFlags)
    if (name == f.name) return parse_flag(f, arg, has_arg);
  if (name == "QCatchSyscalls") return parse_catch_syscalls(arg, has_arg);

  if (name == "QPassSignals" || name == "QProgramSignals") {
    auto list = has_arg ? parse_signal_list(arg) : std::nullopt;
    if (!list) return bad(name, "bad signal list");
    if (name == "QPassSignals") return Request{PassSignals{std::move(*list)}};
    return Request{ProgramSignals{std::move(*list)}};
  }
  if (name == "QEnvironmentHexEncoded") {
    if (!has_arg) return bad(name, "missing value");
    return parse_environment_set(arg);
  }
  if (name == "QEnvironmentUnset") {
    if (!has_arg) return bad(name, "missing value");
    return parse_environment_unset(arg);
  }
  if (name == "QSetWorkingDir") {
    auto dir = has_arg ? from_hex(arg) : std::nullopt;
    if (!dir) return bad(name, "bad hex directory");
    return Request{SetWorkingDir{std::move(*dir)}};
  }
  return unsupported(name.substr(0, name.find(';')));
}

// ---- v packets ------------------------------------------------------------

Result<VContAction> parse_vcont_action(sv s) {
  constexpr sv kName = "vCont";
  VContAction a;
  sv action = s;
  if (auto colon = s.find(':'); colon != sv::npos) {
    action = s.substr(0, colon);
    a.thread = parse_thread_id(s.substr(colon + 1));
    if (!a.thread) return bad(kName, "bad thread id");
  }
  if (action.empty()) return bad(kName, "empty action");
  a.action = action[0];
  sv arg = action.substr(1);
  switch (a.action) {
    case 'c':
    case 's':
    case 't':
      if (!arg.empty()) return bad(kName, "unexpected action argument");
      break;
    case 'C':
    case 'S': {
      auto sig = parse_signal(arg);
      if (!sig) return bad(kName, "bad signal");
      a.signal = *sig;
      break;
    }
    case 'r': {
      auto range = split_once(arg, ',');
      auto start = range ? parse_hex_u64(range->first) : std::nullopt;
      auto end = range ? parse_hex_u64(range->second) : std::nullopt;
      if (!start || !end) return bad(kName, "bad range");
      a.range_start = *start;
      a.range_end = *end;
      break;
    }
    default:
      return bad(kName, "unknown action");
  }
  return a;
}

Result<Request> parse_vcont(sv p) {
  if (!p.starts_with("vCont;")) return bad("vCont", "missing actions");
  VCont v;
  for (sv part : split_all(p.substr(6), ';')) {
    auto a = parse_vcont_action(part);
    if (!a) return a.error();
    v.actions.push_back(*a);
  }
  return Request{std::move(v)};
}

Result<Request> parse_vrun(sv p) {
  if (!p.starts_with("vRun;")) return bad("vRun", "missing program");
  VRun r;
  for (sv part : split_all(p.substr(5), ';')) {
    auto arg = from_hex(part);
    if (!arg) return bad("vRun", "bad hex argument");
    r.argv.push_back(std::move(*arg));
  }
  return Request{std::move(r)};
}

// vFile:open:hexname,flags,mode  vFile:pread:fd,count,offset  vFile:close:fd
// vFile:fstat:fd  vFile:readlink:hexname  vFile:setfs:pid  vFile:unlink:hexname
// vFile:pwrite:fd,offset,binary (parsed so it can be refused cleanly)
Result<Request> parse_vfile(sv p) {
  // Bare "vFile" (5 bytes) reaches here too: substr(6) would throw.
  if (p.size() < 6) return bad("vFile", "missing operation arguments");
  auto rest = p.substr(6);  // after "vFile:"
  auto colon = rest.find(':');
  if (colon == sv::npos) return bad("vFile", "missing operation arguments");
  sv op = rest.substr(0, colon);
  sv args = rest.substr(colon + 1);
  HostFile f;
  auto nums = [&](std::size_t n, std::vector<uint64_t>& out) {
    auto parts = split_all(args, ',');
    if (parts.size() != n) return false;
    for (sv part : parts) {
      auto v = parse_hex_u64(part);
      if (!v) return false;
      out.push_back(*v);
    }
    return true;
  };
  auto path = [&](sv hex) -> bool {
    auto d = from_hex(hex);
    if (!d || d->empty() || d->size() > 4096 || d->find('\0') != std::string::npos) return false;
    f.path = *d;
    return true;
  };
  std::vector<uint64_t> v;
  if (op == "open") {
    auto parts = split_all(args, ',');
    if (parts.size() != 3 || !path(parts[0])) return bad("vFile:open", "bad arguments");
    auto fl = parse_hex_u64(parts[1]);
    auto md = parse_hex_u64(parts[2]);
    if (!fl || !md) return bad("vFile:open", "bad flags or mode");
    f.op = HostFile::Op::Open;
    f.flags = *fl;
    f.mode = *md;
  } else if (op == "readlink" || op == "unlink") {
    if (!path(args)) return bad("vFile", "bad file name");
    f.op = op == "readlink" ? HostFile::Op::Readlink : HostFile::Op::Unlink;
  } else if (op == "close" || op == "fstat" || op == "setfs") {
    if (!nums(1, v) || v[0] > kMaxPositiveId) return bad("vFile", "bad number");
    f.op = op == "close" ? HostFile::Op::Close : op == "fstat" ? HostFile::Op::Fstat : HostFile::Op::SetFs;
    f.fd = static_cast<int64_t>(v[0]);
  } else if (op == "pread") {
    if (!nums(3, v) || v[0] > kMaxPositiveId || v[2] > kMaxPositiveId) return bad("vFile:pread", "bad arguments");
    f.op = HostFile::Op::Pread;
    f.fd = static_cast<int64_t>(v[0]);
    f.count = std::min<uint64_t>(v[1], kMaxTransfer);
    f.offset = v[2];
  } else if (op == "pwrite") {
    auto c1 = args.find(',');
    auto c2 = c1 == sv::npos ? sv::npos : args.find(',', c1 + 1);
    if (c2 == sv::npos) return bad("vFile:pwrite", "bad arguments");
    auto fd = parse_hex_u64(args.substr(0, c1));
    auto off = parse_hex_u64(args.substr(c1 + 1, c2 - c1 - 1));
    if (!fd || !off || *fd > kMaxPositiveId || *off > kMaxPositiveId) return bad("vFile:pwrite", "bad fd or offset");
    f.op = HostFile::Op::Pwrite;
    f.fd = static_cast<int64_t>(*fd);
    f.offset = *off;
    f.data = std::string(args.substr(c2 + 1));
  } else {
    return unsupported("vFile:" + std::string(op));
  }
  return Request{std::move(f)};
}

Result<Request> parse_v(sv p) {
  if (p == "vCont?") return Request{VContQuery{}};
  if (p == "vStopped") return Request{VStopped{}};
  if (p == "vCtrlC") return Request{VCtrlC{}};
  sv name = p.substr(0, p.find_first_of(";:"));
  if (name == "vCont") return parse_vcont(p);
  if (name == "vRun") return parse_vrun(p);
  if (name == "vFile") return parse_vfile(p);
  if (name == "vKill" || name == "vAttach") {
    auto pid = p.size() > name.size() + 1 && p[name.size()] == ';' ? parse_hex_pid(p.substr(name.size() + 1))
                                                                  : std::nullopt;
    if (!pid) return bad(name, "bad pid");
    if (name == "vKill") return Request{VKill{*pid}};
    return Request{VAttach{*pid}};
  }
  return unsupported(name);
}

Result<Request> parse_json(sv p) {
  auto colon = p.find(':');
  sv name = p.substr(0, colon);
  if (name.size() < 2) return unsupported(name);
  sv json = colon == sv::npos ? sv{} : p.substr(colon + 1);
  return Request{JsonRequest{std::string(name), std::string(json)}};
}

// Packets made of one letter and nothing else.
Result<Request> exact(sv p, Request r) {
  if (p.size() != 1) return bad(p.substr(0, 1), "unexpected arguments");
  return r;
}

}  // namespace

std::optional<ThreadId> parse_thread_id(std::string_view s) {
  ThreadId t;
  if (s.starts_with('p')) {
    s.remove_prefix(1);
    auto dot = s.find('.');
    auto pid = parse_id_part(s.substr(0, dot));
    if (!pid) return std::nullopt;
    t.pid = *pid;
    if (dot == sv::npos) {
      t.tid = -1;  // "pPID" means every thread of PID
      return t;
    }
    s = s.substr(dot + 1);
  }
  auto tid = parse_id_part(s);
  if (!tid) return std::nullopt;
  t.tid = *tid;
  return t;
}

Result<Request> parse_request(std::string_view p) {
  if (p.empty()) return unsupported("");
  switch (p[0]) {
    case '?': return exact(p, QueryHaltReason{});
    case 'k': return exact(p, Kill{});
    case 'c':
    case 's':
    case 'C':
    case 'S': return parse_resume(p);
    case 'D': return parse_detach(p);
    case 'g': return parse_read_all_registers(p);
    case 'G': return parse_write_all_registers(p);
    case 'p': return parse_read_register(p);
    case 'P': return parse_write_register(p);
    case 'm':
    case 'x': return parse_read_memory(p);
    case 'M':
    case 'X': return parse_write_memory(p);
    case 'Z':
    case 'z': return parse_breakpoint(p);
    case 'H': return parse_set_thread(p);
    case 'T': return parse_thread_alive(p);
    case 'q': return parse_q(p);
    case 'Q': return parse_Q(p);
    case 'v': return parse_v(p);
    case 'j': return parse_json(p);
    case 'b':  // bc / bs (reverse execution) are two letters
      return unsupported(p.substr(0, p.size() > 1 && (p[1] == 'c' || p[1] == 's') ? 2 : 1));
    default: return unsupported(p.substr(0, 1));
  }
}

}  // namespace dbgstub::rsp

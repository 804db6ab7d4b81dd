#include "protocol/rsp/reply.h"

#include <cerrno>

#include <algorithm>

#include "protocol/rsp/hex.h"

namespace dbgstub::rsp {
namespace {

uint8_t clamp_u8(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// One thread-id component: -1 ("all") is the only negative value on the wire.
std::string id_part(int64_t v) { return v < 0 ? "-1" : hex_u64(static_cast<uint64_t>(v)); }

// Register numbers in stop replies are at least two hex digits ("08:...").
std::string regno_hex(int regno) {
  std::string h = hex_u64(static_cast<uint64_t>(std::max(regno, 0)));
  return h.size() < 2 ? "0" + h : h;
}

std::string exit_reply(char kind, int value, std::optional<int64_t> pid) {
  std::string out(1, kind);
  out += hex_u8(clamp_u8(value));
  if (pid) out += ";process:" + id_part(*pid);
  return out;
}

}  // namespace

std::string reply_ok() { return "OK"; }

std::string reply_empty() { return {}; }

std::string reply_error(int code) { return "E" + hex_u8(clamp_u8(code)); }

std::string reply_error_message(int code, std::string_view message, bool text_allowed) {
  if (!text_allowed) return reply_error(code);
  return "E." + std::string(message);
}

std::string reply_console_output(std::string_view text) { return "O" + to_hex(text); }

std::string format_thread_id(const ThreadId& t, bool multiprocess) {
  if (!multiprocess) return id_part(t.tid);
  if (t.pid < 0) return "p-1";  // all processes: a thread part would be meaningless
  return "p" + id_part(t.pid) + "." + id_part(t.tid);
}

std::string build_stop_reply(const StopReply& r, bool multiprocess) {
  std::string out = "T" + hex_u8(clamp_u8(r.signal));
  for (const auto& [regno, bytes] : r.registers) {
    out += regno_hex(regno);
    out += ':';
    out += to_hex(bytes);
    out += ';';
  }
  out += "thread:" + format_thread_id(r.thread, multiprocess) + ";";
  for (const auto& [name, value] : r.extras) {
    // An empty value still gets its ':' - GDB expects "swbreak:;".
    out += name;
    out += ':';
    out += value;
    out += ';';
  }
  return out;
}

std::string build_exit_reply(int code, std::optional<int64_t> pid) { return exit_reply('W', code, pid); }

std::string build_signal_exit_reply(int signal, std::optional<int64_t> pid) {
  return exit_reply('X', signal, pid);
}

std::string build_thread_exit_reply(int code, const ThreadId& t, bool multiprocess) {
  return "w" + hex_u8(clamp_u8(code)) + ";" + format_thread_id(t, multiprocess);
}

std::string build_thread_list(const std::vector<ThreadId>& threads, bool multiprocess) {
  if (threads.empty()) return "l";
  std::string out = "m";
  for (std::size_t i = 0; i < threads.size(); ++i) {
    if (i) out += ',';
    out += format_thread_id(threads[i], multiprocess);
  }
  return out;
}

std::string build_xfer_chunk(std::string_view document, uint64_t offset, uint64_t length) {
  if (offset >= document.size()) return "l";
  uint64_t available = document.size() - offset;
  uint64_t take = std::min(length, available);
  std::string out(1, take == available ? 'l' : 'm');
  out += document.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(take));
  return out;
}

std::string build_supported(const std::vector<std::string>& features) {
  std::string out;
  for (std::size_t i = 0; i < features.size(); ++i) {
    if (i) out += ';';
    out += features[i];
  }
  return out;
}

std::string build_key_values(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string out;
  for (const auto& [k, v] : kv) {
    out += k;
    out += ':';
    out += v;
    out += ';';
  }
  return out;
}

std::string build_file_reply(int64_t result, int err, std::string_view attachment, bool with_attachment) {
  std::string out = "F";
  if (result < 0) {
    out += "-" + hex_u64(0 - static_cast<uint64_t>(result));  // no overflow at INT64_MIN
    out += "," + hex_u64(static_cast<uint64_t>(err));
    return out;
  }
  out += hex_u64(static_cast<uint64_t>(result));
  if (with_attachment) {
    out += ';';
    out.append(attachment);
  }
  return out;
}

int fileio_errno(int e) {
  // Values from the GDB manual's "Errno Values" (File-I/O remote protocol).
  switch (e) {
    case EPERM: return 1;
    case ENOENT: return 2;
    case EINTR: return 4;
    case EBADF: return 9;
    case EACCES: return 13;
    case EFAULT: return 14;
    case EBUSY: return 16;
    case EEXIST: return 17;
    case ENODEV: return 19;
    case ENOTDIR: return 20;
    case EISDIR: return 21;
    case EINVAL: return 22;
    case ENFILE: return 23;
    case EMFILE: return 24;
    case EFBIG: return 27;
    case ENOSPC: return 28;
    case ESPIPE: return 29;
    case EROFS: return 30;
    case ENOSYS: return 88;  // not in the manual's list; gdb's fileio.h has it
    case ENAMETOOLONG: return 91;
    default: return 9999;
  }
}

}  // namespace dbgstub::rsp

// Builders for RSP replies. Pure functions from values to payload strings;
// framing (checksums, escaping) happens in framing.h.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/rsp/request.h"

namespace dbgstub::rsp {

std::string reply_ok();                       // "OK"
std::string reply_empty();                    // "" (unsupported)
std::string reply_error(int code);            // "Exx", code clamped to 0..255
// "E.message" for clients that announced error-message+ / QEnableErrorStrings.
std::string reply_error_message(int code, std::string_view message, bool text_allowed);
std::string reply_console_output(std::string_view text);  // "O" + hex(text)

// Thread id in the form the client expects.
std::string format_thread_id(const ThreadId& t, bool multiprocess);

// Stop reply "T" packet.
struct StopReply {
  int signal = 0;
  ThreadId thread;
  // Expedited registers: (regno, little-endian raw bytes).
  std::vector<std::pair<int, std::string>> registers;
  // Extra "name:value" pairs in order, e.g. {"swbreak",""}, {"watch","7ffe0"},
  // {"fork","p12.12"}, {"reason","breakpoint"}, {"threads","1,2"}.
  std::vector<std::pair<std::string, std::string>> extras;
};
std::string build_stop_reply(const StopReply& r, bool multiprocess);

// "Wxx[;process:pid]" / "Xxx[;process:pid]"
std::string build_exit_reply(int code, std::optional<int64_t> pid);
std::string build_signal_exit_reply(int signal, std::optional<int64_t> pid);
// "wxx;TID": thread TID exited with code xx (sent only after QThreadEvents:1).
std::string build_thread_exit_reply(int code, const ThreadId& t, bool multiprocess);

// qfThreadInfo / qsThreadInfo: "m1,2,3" or "l"
std::string build_thread_list(const std::vector<ThreadId>& threads, bool multiprocess);

// qXfer chunk: "m<data>" if more follows, "l<data>" at the end.
// Slices `document` at offset/length (an offset past the end yields "l").
std::string build_xfer_chunk(std::string_view document, uint64_t offset, uint64_t length);

// qSupported reply from name/value pairs ("PacketSize=4000", "qXfer:features:read+").
std::string build_supported(const std::vector<std::string>& features);

// lldb-style "key:value;key:value;"
std::string build_key_values(const std::vector<std::pair<std::string, std::string>>& kv);

// Host I/O reply: "F<result>[,<errno>][;<attachment>]" (result < 0 carries
// GDB's fileio errno). The attachment is raw binary; framing escapes it.
std::string build_file_reply(int64_t result, int fileio_errno = 0, std::string_view attachment = {},
                             bool with_attachment = false);
// Host errno -> GDB fileio errno (EUNKNOWN 9999 for those it lacks).
int fileio_errno(int host_errno);

}  // namespace dbgstub::rsp

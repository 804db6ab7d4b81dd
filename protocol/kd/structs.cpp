#include "protocol/kd/structs.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace dbgstub::kd {

Error detail::too_short(const char* name, std::size_t have, std::size_t need) {
  static constexpr char kMid[] = " bytes, need ";
  char have_s[24], need_s[24];
  char* have_end = std::to_chars(have_s, have_s + sizeof have_s, have).ptr;
  char* need_end = std::to_chars(need_s, need_s + sizeof need_s, need).ptr;
  std::size_t name_len = std::strlen(name);
  std::string m;
  m.reserve(name_len + 2 + static_cast<std::size_t>(have_end - have_s) + sizeof kMid - 1 +
            static_cast<std::size_t>(need_end - need_s));
  m.append(name, name_len).append(": ").append(have_s, have_end).append(kMid).append(need_s, need_end);
  return make_error(22, std::move(m));
}

namespace {

constexpr uint32_t kMaxPacket = 4000;  // PACKET_MAX_SIZE

template <class T, std::size_t N>
T read_from_union(const std::array<uint8_t, N>& u) {
  static_assert(T::kSize <= N);
  // Cannot fail: the union is at least T::kSize bytes.
  return parse_struct<T>(ByteView(u.data(), u.size())).value();
}

template <class T, std::size_t N>
void write_to_union(std::array<uint8_t, N>& u, const T& v) {
  static_assert(T::kSize <= N);
  Bytes b = serialize_struct(v);
  std::copy(b.begin(), b.end(), u.begin());
}

Bytes tail(ByteView payload, std::size_t from) {
  if (payload.size() <= from) return {};
  return Bytes(payload.begin() + static_cast<std::ptrdiff_t>(from), payload.end());
}

Bytes join(const Bytes& head, const Bytes& data) {
  Bytes out;
  out.reserve(head.size() + data.size());
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Error too_long(const char* what, std::size_t n) {
  return make_error(22, std::string(what) + ": " + std::to_string(n) + " bytes exceeds PACKET_MAX_SIZE");
}

}  // namespace

static_assert(detail::WireSize<Context>::value == 0x4D0);
static_assert(detail::WireSize<XmmSaveArea32>::value == 0x200);
static_assert(Context::kOffFltSave + XmmSaveArea32::kSize == Context::kOffVectorRegister);
static_assert(Context::kOffVectorRegister + 26 * 16 == Context::kOffVectorControl);
static_assert(Context::kOffDebugControl + 5 * 8 == Context::kSize);
static_assert(XmmSaveArea32::kSize == 0x20 + 8 * 16 + 16 * 16 + 96);
static_assert(KSpecialRegisters::kSize == 0xD8 + 8);
static_assert(ExceptionRecord64::kSize == 0x20 + 15 * 8);
static_assert(Exception64::kSize <= WaitStateChange::kUnionSize);
static_assert(LoadSymbols64::kSize <= WaitStateChange::kUnionSize);
static_assert(WaitStateChange::kUnionOffset + WaitStateChange::kUnionSize == WaitStateChange::kControlReportOffset);
static_assert(WaitStateChange::kControlReportOffset + ControlReport::kSize == WaitStateChange::kSize);
static_assert(GetVersion64::kSize == ManipulateState64::kUnionSize);
static_assert(ManipulateState64::kUnionOffset + ManipulateState64::kUnionSize == ManipulateState64::kSize);
static_assert(CreateFile::kSize <= 56);

Exception64 WaitStateChange::exception() const { return read_from_union<Exception64>(u); }
LoadSymbols64 WaitStateChange::load_symbols() const { return read_from_union<LoadSymbols64>(u); }
void WaitStateChange::set_exception(const Exception64& e) { write_to_union(u, e); }
void WaitStateChange::set_load_symbols(const LoadSymbols64& l) { write_to_union(u, l); }

std::string StateChangeMessage::path() const {
  std::size_t n = header.kind() == kDbgKdLoadSymbolsStateChange ? header.load_symbols().path_name_length : 0;
  n = std::min<std::size_t>(n, data.size());
  std::string out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
  if (auto z = out.find('\0'); z != std::string::npos) out.resize(z);
  return out;
}

Result<StateChangeMessage> parse_state_change(ByteView payload) {
  if (payload.size() > kMaxPacket) return too_long("DBGKD_ANY_WAIT_STATE_CHANGE", payload.size());
  auto h = parse_struct<WaitStateChange>(payload, "DBGKD_ANY_WAIT_STATE_CHANGE");
  if (!h) return h.error();
  uint32_t kind = h->kind();
  if (kind < kDbgKdExceptionStateChange || kind >= kDbgKdMaximumStateChange) {
    return make_error(22, "unknown state change " + std::to_string(h->new_state));
  }
  return StateChangeMessage{*h, tail(payload, WaitStateChange::kSize)};
}

Bytes serialize_state_change(const StateChangeMessage& m) { return join(serialize_struct(m.header), m.data); }

std::string DebugIoMessage::text() const {
  std::size_t n = std::min<std::size_t>(header.length_of_string, data.size());
  return std::string(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
}

Result<DebugIoMessage> parse_debug_io(ByteView payload) {
  if (payload.size() > kMaxPacket) return too_long("DBGKD_DEBUG_IO", payload.size());
  auto h = parse_struct<DebugIo>(payload, "DBGKD_DEBUG_IO");
  if (!h) return h.error();
  if (h->api_number != kDbgKdPrintStringApi && h->api_number != kDbgKdGetStringApi) {
    return make_error(22, "unknown debug I/O api " + std::to_string(h->api_number));
  }
  return DebugIoMessage{*h, tail(payload, DebugIo::kSize)};
}

Bytes serialize_debug_io(const DebugIoMessage& m) { return join(serialize_struct(m.header), m.data); }

DebugIoMessage make_print_string(std::string_view text, uint16_t processor, uint16_t processor_level) {
  // Leave room for the header within PACKET_MAX_SIZE.
  text = text.substr(0, std::min<std::size_t>(text.size(), kMaxPacket - DebugIo::kSize));
  DebugIoMessage m;
  m.header.api_number = kDbgKdPrintStringApi;
  m.header.processor_level = processor_level;
  m.header.processor = processor;
  m.header.length_of_string = static_cast<uint32_t>(text.size());
  m.data.assign(text.begin(), text.end());
  return m;
}

Result<FileIoMessage> parse_file_io(ByteView payload) {
  if (payload.size() > kMaxPacket) return too_long("DBGKD_FILE_IO", payload.size());
  auto h = parse_struct<FileIo>(payload, "DBGKD_FILE_IO");
  if (!h) return h.error();
  if (h->api_number < kDbgKdCreateFileApi || h->api_number > kDbgKdCloseFileApi) {
    return make_error(22, "unknown file I/O api " + std::to_string(h->api_number));
  }
  return FileIoMessage{*h, tail(payload, FileIo::kSize)};
}

Bytes serialize_file_io(const FileIoMessage& m) { return join(serialize_struct(m.header), m.data); }

}  // namespace dbgstub::kd

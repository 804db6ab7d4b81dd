// DBGKD_MANIPULATE_STATE64 requests (host -> target) as typed values, and
// the replies a Windows AMD64 target sends for them. A reply is the request
// header echoed back (including whatever stale bytes the host left in
// padding and the union) with ReturnStatus and the API's result fields
// overwritten and result data appended -- the same bytes the kernel sends.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include "common/result.h"
#include "protocol/kd/framing.h"
#include "protocol/kd/structs.h"

namespace dbgstub::kd {

// Largest data part of a manipulate packet.
inline constexpr std::size_t kMaxManipulateData = kPacketMaxSize - ManipulateState64::kSize;

// ---- Union members (offsets relative to the union at 0x10) ----------------

// DBGKD_READ_MEMORY64 / DBGKD_WRITE_MEMORY64 (also control space, physical).
struct MemoryTransfer64 {
  static constexpr std::size_t kSize = 0x10;
  uint64_t target_base_address = 0;
  uint32_t transfer_count = 0;
  uint32_t actual_bytes = 0;  // ActualBytesRead / ActualBytesWritten
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.target_base_address); f(0x8, s.transfer_count); f(0xC, s.actual_bytes); }
};

// DBGKD_WRITE_BREAKPOINT64.
struct WriteBreakPoint64 {
  static constexpr std::size_t kSize = 0x0C;
  uint64_t break_point_address = 0;
  uint32_t break_point_handle = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.break_point_address); f(0x8, s.break_point_handle); }
};

// DBGKD_CONTINUE2 with the AMD64 control set (pack(4)).
struct Continue2Body {
  static constexpr std::size_t kSize = 0x20;
  uint32_t continue_status = 0, trace_flag = 0;
  uint64_t dr7 = 0, current_symbol_start = 0, current_symbol_end = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x0, s.continue_status); f(0x4, s.trace_flag); f(0x8, s.dr7); f(0x10, s.current_symbol_start);
    f(0x18, s.current_symbol_end);
  }
};

// DBGKD_CONTEXT_EX.
struct ContextEx {
  static constexpr std::size_t kSize = 0x0C;
  uint32_t offset = 0, byte_count = 0, bytes_copied = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.offset); f(0x4, s.byte_count); f(0x8, s.bytes_copied); }
};

// DBGKD_READ_WRITE_IO64.
struct ReadWriteIo64 {
  static constexpr std::size_t kSize = 0x10;
  uint64_t io_address = 0;
  uint32_t data_size = 0, data_value = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.io_address); f(0x8, s.data_size); f(0xC, s.data_value); }
};

// DBGKD_READ_WRITE_MSR.
struct ReadWriteMsr {
  static constexpr std::size_t kSize = 0x0C;
  uint32_t msr = 0, data_value_low = 0, data_value_high = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.msr); f(0x4, s.data_value_low); f(0x8, s.data_value_high); }
};

// DBGKD_SEARCH_MEMORY.
struct SearchMemory64 {
  static constexpr std::size_t kSize = 0x14;
  uint64_t search_address = 0;  // FoundAddress in the reply
  uint64_t search_length = 0;
  uint32_t pattern_length = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.search_address); f(0x8, s.search_length); f(0x10, s.pattern_length); }
};

// DBGKD_QUERY_MEMORY.
struct QueryMemory64 {
  static constexpr std::size_t kSize = 0x18;
  uint64_t address = 0, reserved = 0;
  uint32_t address_space = 0, flags = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.address); f(0x8, s.reserved); f(0x10, s.address_space); f(0x14, s.flags); }
};

// Reads a union member out of a manipulate header.
template <class T>
T union_view(const ManipulateState64& h) {
  static_assert(T::kSize <= ManipulateState64::kUnionSize);
  return parse_struct<T>(ByteView(h.u.data(), h.u.size())).value();
}
// Writes a union member into a manipulate header (other union bytes kept).
template <class T>
void set_union(ManipulateState64& h, const T& v) {
  static_assert(T::kSize <= ManipulateState64::kUnionSize);
  Bytes b = serialize_struct(v);
  std::copy(b.begin(), b.end(), h.u.begin());
}

// ---- Typed requests -----------------------------------------------------------

namespace req {
struct ReadVirtualMemory { uint64_t address; uint32_t transfer_count; };
struct WriteVirtualMemory { uint64_t address; uint32_t transfer_count; Bytes data; };
// ActualBytes carries the caching flags (DBGKD_CACHING_*) in physical requests.
struct ReadPhysicalMemory { uint64_t address; uint32_t transfer_count; uint32_t cache_flags; };
struct WritePhysicalMemory { uint64_t address; uint32_t transfer_count; uint32_t cache_flags; Bytes data; };
// AMD64 control space: address is AMD64_DEBUG_CONTROL_SPACE_* (KPCR, KPRCB,
// KSPECIAL, KTHREAD); the processor is the header's Processor.
struct ReadControlSpace { uint64_t address; uint32_t transfer_count; };
struct WriteControlSpace { uint64_t address; uint32_t transfer_count; Bytes data; };
struct GetContext {};
struct SetContext { uint32_t context_flags; Context context; };
struct GetContextEx { uint32_t offset; uint32_t byte_count; };
struct SetContextEx { uint32_t offset; uint32_t byte_count; Bytes data; };
struct WriteBreakPoint { uint64_t address; };
struct RestoreBreakPoint { uint32_t handle; };
struct Continue { uint32_t continue_status; };
struct Continue2 { uint32_t continue_status; uint32_t trace_flag; uint64_t dr7, current_symbol_start, current_symbol_end; };
struct GetVersion {};
struct ReadIoSpace { uint64_t address; uint32_t data_size; };
struct WriteIoSpace { uint64_t address; uint32_t data_size; uint32_t value; };
struct ReadMsr { uint32_t msr; };
struct WriteMsr { uint32_t msr; uint64_t value; };
struct QuerySpecialCalls {};
struct ClearAllInternalBreakpoints {};
struct SwitchProcessor {};  // target processor: header.processor
struct Reboot {};
struct CauseBugCheck {};
struct SearchMemory { uint64_t address; uint64_t length; Bytes pattern; };
struct QueryMemory { uint64_t address; uint32_t address_space; uint32_t flags; };
// A defined API this codec does not model, or an undefined API number; the
// target answers with STATUS_UNSUCCESSFUL (reply_status).
struct Unsupported { uint32_t api; bool known; };
}  // namespace req

using ManipulateBody =
    std::variant<req::ReadVirtualMemory, req::WriteVirtualMemory, req::ReadPhysicalMemory, req::WritePhysicalMemory,
                 req::ReadControlSpace, req::WriteControlSpace, req::GetContext, req::SetContext, req::GetContextEx,
                 req::SetContextEx, req::WriteBreakPoint, req::RestoreBreakPoint, req::Continue, req::Continue2,
                 req::GetVersion, req::ReadIoSpace, req::WriteIoSpace, req::ReadMsr, req::WriteMsr,
                 req::QuerySpecialCalls, req::ClearAllInternalBreakpoints, req::SwitchProcessor, req::Reboot,
                 req::CauseBugCheck, req::SearchMemory, req::QueryMemory, req::Unsupported>;

struct ManipulateRequest {
  ManipulateState64 header;  // as received; replies echo it
  ManipulateBody body;
  Bytes data;  // bytes after the 0x38-byte header
  uint32_t api() const { return header.api_number; }
};

// Name of a manipulate API ("DbgKdReadVirtualMemoryApi"), or "unknown".
const char* manipulate_api_name(uint32_t api);

// Parses the fixed header only (at least 0x38 bytes, at most
// PACKET_MAX_SIZE) so that even a request with a bad body can be answered.
Result<ManipulateState64> parse_manipulate_header(ByteView payload);
// Parses a whole request. Fails on a short header, an oversize payload, or
// a body the API needs but that is missing (SetContext without a full
// CONTEXT). Unknown APIs parse as req::Unsupported.
Result<ManipulateRequest> parse_manipulate(ByteView payload);

// Clamps a requested transfer to what fits in one reply.
inline uint32_t clamp_transfer(uint32_t requested) {
  return requested > kMaxManipulateData ? static_cast<uint32_t>(kMaxManipulateData) : requested;
}

// ---- Replies (payload of a PACKET_TYPE_KD_STATE_MANIPULATE packet) ----------

// Echo with ReturnStatus only: SetContext, RestoreBreakPoint, WriteMsr,
// ClearAllInternalBreakpoints, unsupported APIs, and any failure.
Bytes reply_status(const ManipulateState64& request, uint32_t status);
// ReadVirtual/ReadPhysical/ReadControlSpace: ActualBytesRead = data size
// (clamped to kMaxManipulateData), data appended.
Bytes reply_read_memory(const ManipulateState64& request, uint32_t status, ByteView data);
// WriteVirtual/WritePhysical/WriteControlSpace: ActualBytesWritten.
Bytes reply_write_memory(const ManipulateState64& request, uint32_t status, uint32_t bytes_written);
// GetContext: the CONTEXT appended.
Bytes reply_get_context(const ManipulateState64& request, uint32_t status, const Context& context);
// GetContextEx: the [Offset, Offset+ByteCount) window of the serialized
// CONTEXT, clamped to its size; BytesCopied set.
Bytes reply_get_context_ex(const ManipulateState64& request, uint32_t status, const Context& context);
// GetContextEx with the bytes given directly.
Bytes reply_get_context_ex_bytes(const ManipulateState64& request, uint32_t status, ByteView bytes);
// SetContextEx: BytesCopied.
Bytes reply_set_context_ex(const ManipulateState64& request, uint32_t status, uint32_t bytes_copied);
// WriteBreakPoint: BreakPointHandle.
Bytes reply_write_breakpoint(const ManipulateState64& request, uint32_t status, uint32_t handle);
// GetVersion: the whole union becomes DBGKD_GET_VERSION64.
Bytes reply_get_version(const ManipulateState64& request, uint32_t status, const GetVersion64& version);
// ReadIoSpace: DataValue.
Bytes reply_read_io(const ManipulateState64& request, uint32_t status, uint32_t value);
// ReadMsr: DataValueLow/High.
Bytes reply_read_msr(const ManipulateState64& request, uint32_t status, uint64_t value);
// QuerySpecialCalls: NumberOfSpecialCalls, then that many u64 addresses.
Bytes reply_query_special_calls(const ManipulateState64& request, uint32_t status, std::span<const uint64_t> calls);
// SearchMemory: FoundAddress.
Bytes reply_search_memory(const ManipulateState64& request, uint32_t status, uint64_t found_address);
// QueryMemory: AddressSpace and Flags (DBGKD_QUERY_MEMORY_*).
Bytes reply_query_memory(const ManipulateState64& request, uint32_t status, uint32_t address_space, uint32_t flags);

}  // namespace dbgstub::kd

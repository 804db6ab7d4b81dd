#include "protocol/kd/manipulate.h"

#include <algorithm>

namespace dbgstub::kd {
namespace {

Bytes data_after(ByteView payload) {
  if (payload.size() <= ManipulateState64::kSize) return {};
  return Bytes(payload.begin() + ManipulateState64::kSize, payload.end());
}

Bytes finish(ManipulateState64 h, uint32_t status, ByteView data = {}) {
  h.return_status = status;
  Bytes out = serialize_struct(h);
  std::size_t n = std::min(data.size(), kMaxManipulateData);
  out.insert(out.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
  return out;
}

// The request's header sent back with one union member filled in by `fill`
// (the other union bytes kept), then `data`.
template <class T, class Fill>
Bytes reply_with(const ManipulateState64& request, uint32_t status, Fill&& fill, ByteView data = {}) {
  ManipulateState64 h = request;
  auto u = union_view<T>(h);
  fill(u);
  set_union(h, u);
  return finish(h, status, data);
}

bool is_defined_api(uint32_t api) {
  return api >= kDbgKdMinimumManipulate && api < kDbgKdMaximumManipulate && manipulate_api_name(api)[0] != '?';
}

}  // namespace

const char* manipulate_api_name(uint32_t api) {
  switch (api) {
    case kDbgKdReadVirtualMemoryApi: return "DbgKdReadVirtualMemoryApi";
    case kDbgKdWriteVirtualMemoryApi: return "DbgKdWriteVirtualMemoryApi";
    case kDbgKdGetContextApi: return "DbgKdGetContextApi";
    case kDbgKdSetContextApi: return "DbgKdSetContextApi";
    case kDbgKdWriteBreakPointApi: return "DbgKdWriteBreakPointApi";
    case kDbgKdRestoreBreakPointApi: return "DbgKdRestoreBreakPointApi";
    case kDbgKdContinueApi: return "DbgKdContinueApi";
    case kDbgKdReadControlSpaceApi: return "DbgKdReadControlSpaceApi";
    case kDbgKdWriteControlSpaceApi: return "DbgKdWriteControlSpaceApi";
    case kDbgKdReadIoSpaceApi: return "DbgKdReadIoSpaceApi";
    case kDbgKdWriteIoSpaceApi: return "DbgKdWriteIoSpaceApi";
    case kDbgKdRebootApi: return "DbgKdRebootApi";
    case kDbgKdContinueApi2: return "DbgKdContinueApi2";
    case kDbgKdReadPhysicalMemoryApi: return "DbgKdReadPhysicalMemoryApi";
    case kDbgKdWritePhysicalMemoryApi: return "DbgKdWritePhysicalMemoryApi";
    case kDbgKdQuerySpecialCallsApi: return "DbgKdQuerySpecialCallsApi";
    case kDbgKdSetSpecialCallApi: return "DbgKdSetSpecialCallApi";
    case kDbgKdClearSpecialCallsApi: return "DbgKdClearSpecialCallsApi";
    case kDbgKdSetInternalBreakPointApi: return "DbgKdSetInternalBreakPointApi";
    case kDbgKdGetInternalBreakPointApi: return "DbgKdGetInternalBreakPointApi";
    case kDbgKdReadIoSpaceExtendedApi: return "DbgKdReadIoSpaceExtendedApi";
    case kDbgKdWriteIoSpaceExtendedApi: return "DbgKdWriteIoSpaceExtendedApi";
    case kDbgKdGetVersionApi: return "DbgKdGetVersionApi";
    case kDbgKdWriteBreakPointExApi: return "DbgKdWriteBreakPointExApi";
    case kDbgKdRestoreBreakPointExApi: return "DbgKdRestoreBreakPointExApi";
    case kDbgKdCauseBugCheckApi: return "DbgKdCauseBugCheckApi";
    case kDbgKdSwitchProcessor: return "DbgKdSwitchProcessor";
    case kDbgKdPageInApi: return "DbgKdPageInApi";
    case kDbgKdReadMachineSpecificRegister: return "DbgKdReadMachineSpecificRegister";
    case kDbgKdWriteMachineSpecificRegister: return "DbgKdWriteMachineSpecificRegister";
    case kOldVlm1: return "OldVlm1";
    case kOldVlm2: return "OldVlm2";
    case kDbgKdSearchMemoryApi: return "DbgKdSearchMemoryApi";
    case kDbgKdGetBusDataApi: return "DbgKdGetBusDataApi";
    case kDbgKdSetBusDataApi: return "DbgKdSetBusDataApi";
    case kDbgKdCheckLowMemoryApi: return "DbgKdCheckLowMemoryApi";
    case kDbgKdClearAllInternalBreakpointsApi: return "DbgKdClearAllInternalBreakpointsApi";
    case kDbgKdFillMemoryApi: return "DbgKdFillMemoryApi";
    case kDbgKdQueryMemoryApi: return "DbgKdQueryMemoryApi";
    case kDbgKdSwitchPartition: return "DbgKdSwitchPartition";
    case kDbgKdWriteCustomBreakpointApi: return "DbgKdWriteCustomBreakpointApi";
    case kDbgKdGetContextExApi: return "DbgKdGetContextExApi";
    case kDbgKdSetContextExApi: return "DbgKdSetContextExApi";
    default: return "?unknown";
  }
}

Result<ManipulateState64> parse_manipulate_header(ByteView payload) {
  if (payload.size() > kPacketMaxSize) {
    return make_error(22, "DBGKD_MANIPULATE_STATE64: " + std::to_string(payload.size()) +
                              " bytes exceeds PACKET_MAX_SIZE");
  }
  return parse_struct<ManipulateState64>(payload, "DBGKD_MANIPULATE_STATE64");
}

Result<ManipulateRequest> parse_manipulate(ByteView payload) {
  auto hr = parse_manipulate_header(payload);
  if (!hr) return hr.error();
  const ManipulateState64& h = *hr;
  Bytes data = data_after(payload);
  auto mem = [&] { return union_view<MemoryTransfer64>(h); };
  ManipulateBody body = req::Unsupported{h.api_number, is_defined_api(h.api_number)};
  switch (h.api_number) {
    case kDbgKdReadVirtualMemoryApi: {
      auto m = mem();
      body = req::ReadVirtualMemory{m.target_base_address, m.transfer_count};
      break;
    }
    case kDbgKdWriteVirtualMemoryApi: {
      auto m = mem();
      body = req::WriteVirtualMemory{m.target_base_address, m.transfer_count, data};
      break;
    }
    case kDbgKdReadPhysicalMemoryApi: {
      auto m = mem();
      body = req::ReadPhysicalMemory{m.target_base_address, m.transfer_count, m.actual_bytes};
      break;
    }
    case kDbgKdWritePhysicalMemoryApi: {
      auto m = mem();
      body = req::WritePhysicalMemory{m.target_base_address, m.transfer_count, m.actual_bytes, data};
      break;
    }
    case kDbgKdReadControlSpaceApi: {
      auto m = mem();
      body = req::ReadControlSpace{m.target_base_address, m.transfer_count};
      break;
    }
    case kDbgKdWriteControlSpaceApi: {
      auto m = mem();
      body = req::WriteControlSpace{m.target_base_address, m.transfer_count, data};
      break;
    }
    case kDbgKdGetContextApi: body = req::GetContext{}; break;
    case kDbgKdSetContextApi: {
      auto ctx = parse_context(data);
      if (!ctx) return make_error(22, "DbgKdSetContextApi: " + ctx.error().message);
      ByteReader r(ByteView(h.u.data(), h.u.size()));
      body = req::SetContext{r.u32(0), *ctx};
      break;
    }
    case kDbgKdGetContextExApi: {
      auto c = union_view<ContextEx>(h);
      body = req::GetContextEx{c.offset, c.byte_count};
      break;
    }
    case kDbgKdSetContextExApi: {
      auto c = union_view<ContextEx>(h);
      body = req::SetContextEx{c.offset, c.byte_count, data};
      break;
    }
    case kDbgKdWriteBreakPointApi:
      body = req::WriteBreakPoint{union_view<WriteBreakPoint64>(h).break_point_address};
      break;
    case kDbgKdRestoreBreakPointApi: {
      ByteReader r(ByteView(h.u.data(), h.u.size()));
      body = req::RestoreBreakPoint{r.u32(0)};
      break;
    }
    case kDbgKdContinueApi: {
      ByteReader r(ByteView(h.u.data(), h.u.size()));
      body = req::Continue{r.u32(0)};
      break;
    }
    case kDbgKdContinueApi2: {
      auto c = union_view<Continue2Body>(h);
      body = req::Continue2{c.continue_status, c.trace_flag, c.dr7, c.current_symbol_start, c.current_symbol_end};
      break;
    }
    case kDbgKdGetVersionApi: body = req::GetVersion{}; break;
    case kDbgKdReadIoSpaceApi: {
      auto io = union_view<ReadWriteIo64>(h);
      body = req::ReadIoSpace{io.io_address, io.data_size};
      break;
    }
    case kDbgKdWriteIoSpaceApi: {
      auto io = union_view<ReadWriteIo64>(h);
      body = req::WriteIoSpace{io.io_address, io.data_size, io.data_value};
      break;
    }
    case kDbgKdReadMachineSpecificRegister: body = req::ReadMsr{union_view<ReadWriteMsr>(h).msr}; break;
    case kDbgKdWriteMachineSpecificRegister: {
      auto m = union_view<ReadWriteMsr>(h);
      body = req::WriteMsr{m.msr, (static_cast<uint64_t>(m.data_value_high) << 32) | m.data_value_low};
      break;
    }
    case kDbgKdQuerySpecialCallsApi: body = req::QuerySpecialCalls{}; break;
    case kDbgKdClearAllInternalBreakpointsApi: body = req::ClearAllInternalBreakpoints{}; break;
    case kDbgKdSwitchProcessor: body = req::SwitchProcessor{}; break;
    case kDbgKdRebootApi: body = req::Reboot{}; break;
    case kDbgKdCauseBugCheckApi: body = req::CauseBugCheck{}; break;
    case kDbgKdSearchMemoryApi: {
      auto s = union_view<SearchMemory64>(h);
      if (s.pattern_length > data.size()) {
        return make_error(22, "DbgKdSearchMemoryApi: PatternLength " + std::to_string(s.pattern_length) +
                                  " but " + std::to_string(data.size()) + " bytes of pattern");
      }
      Bytes pattern(data.begin(), data.begin() + s.pattern_length);
      body = req::SearchMemory{s.search_address, s.search_length, std::move(pattern)};
      break;
    }
    case kDbgKdQueryMemoryApi: {
      auto q = union_view<QueryMemory64>(h);
      body = req::QueryMemory{q.address, q.address_space, q.flags};
      break;
    }
    default: break;
  }
  return ManipulateRequest{h, std::move(body), std::move(data)};
}

Bytes reply_status(const ManipulateState64& request, uint32_t status) { return finish(request, status); }

Bytes reply_read_memory(const ManipulateState64& request, uint32_t status, ByteView data) {
  return reply_with<MemoryTransfer64>(
      request, status, [&](auto& m) { m.actual_bytes = static_cast<uint32_t>(std::min(data.size(), kMaxManipulateData)); },
      data);
}

Bytes reply_write_memory(const ManipulateState64& request, uint32_t status, uint32_t bytes_written) {
  return reply_with<MemoryTransfer64>(request, status, [&](auto& m) { m.actual_bytes = bytes_written; });
}

Bytes reply_get_context(const ManipulateState64& request, uint32_t status, const Context& context) {
  Bytes ctx = serialize_struct(context);
  return finish(request, status, ctx);
}

Bytes reply_get_context_ex_bytes(const ManipulateState64& request, uint32_t status, ByteView bytes) {
  return reply_with<ContextEx>(
      request, status, [&](auto& c) { c.bytes_copied = static_cast<uint32_t>(std::min(bytes.size(), kMaxManipulateData)); },
      bytes);
}

Bytes reply_get_context_ex(const ManipulateState64& request, uint32_t status, const Context& context) {
  Bytes ctx = serialize_struct(context);
  auto c = union_view<ContextEx>(request);
  std::size_t off = std::min<std::size_t>(c.offset, ctx.size());
  std::size_t n = std::min<std::size_t>(c.byte_count, ctx.size() - off);
  return reply_get_context_ex_bytes(request, status, ByteView(ctx.data() + off, n));
}

Bytes reply_set_context_ex(const ManipulateState64& request, uint32_t status, uint32_t bytes_copied) {
  return reply_with<ContextEx>(request, status, [&](auto& c) { c.bytes_copied = bytes_copied; });
}

Bytes reply_write_breakpoint(const ManipulateState64& request, uint32_t status, uint32_t handle) {
  return reply_with<WriteBreakPoint64>(request, status, [&](auto& b) { b.break_point_handle = handle; });
}

Bytes reply_get_version(const ManipulateState64& request, uint32_t status, const GetVersion64& version) {
  ManipulateState64 h = request;
  set_union(h, version);
  return finish(h, status);
}

Bytes reply_read_io(const ManipulateState64& request, uint32_t status, uint32_t value) {
  return reply_with<ReadWriteIo64>(request, status, [&](auto& io) { io.data_value = value; });
}

Bytes reply_read_msr(const ManipulateState64& request, uint32_t status, uint64_t value) {
  return reply_with<ReadWriteMsr>(request, status, [&](auto& m) {
    m.data_value_low = static_cast<uint32_t>(value);
    m.data_value_high = static_cast<uint32_t>(value >> 32);
  });
}

Bytes reply_query_special_calls(const ManipulateState64& request, uint32_t status, std::span<const uint64_t> calls) {
  ManipulateState64 h = request;
  std::size_t n = std::min(calls.size(), kMaxManipulateData / 8);
  ByteWriter count(4);
  count.u32(0, static_cast<uint32_t>(n));
  std::copy(count.bytes().begin(), count.bytes().end(), h.u.begin());
  ByteWriter data(n * 8);
  for (std::size_t i = 0; i < n; ++i) data.u64(i * 8, calls[i]);
  return finish(h, status, data.bytes());
}

Bytes reply_search_memory(const ManipulateState64& request, uint32_t status, uint64_t found_address) {
  return reply_with<SearchMemory64>(request, status, [&](auto& s) { s.search_address = found_address; });
}

Bytes reply_query_memory(const ManipulateState64& request, uint32_t status, uint32_t address_space, uint32_t flags) {
  return reply_with<QueryMemory64>(request, status, [&](auto& q) {
    q.address_space = address_space;
    q.flags = flags;
  });
}

}  // namespace dbgstub::kd

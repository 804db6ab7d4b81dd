#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "protocol/kd/manipulate.h"
#include "protocol/kd/structs.h"

using namespace dbgstub::kd;

namespace {

Bytes random_bytes(std::mt19937& rng, std::size_t n) {
  Bytes b(n);
  for (auto& c : b) c = static_cast<uint8_t>(rng());
  return b;
}

uint64_t le64(const Bytes& b, std::size_t off) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b.at(off + i)) << (8 * i);
  return v;
}
uint32_t le32(const Bytes& b, std::size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(b.at(off + i)) << (8 * i);
  return v;
}
uint16_t le16(const Bytes& b, std::size_t off) { return static_cast<uint16_t>(b.at(off) | (b.at(off + 1) << 8)); }

// Every byte is a field: serialize(parse(x)) == x for random x.
template <class T>
void check_round_trip(std::mt19937& rng) {
  for (int i = 0; i < 20; ++i) {
    Bytes b = random_bytes(rng, T::kSize);
    auto v = parse_struct<T>(b);
    REQUIRE(v.ok());
    CHECK(serialize_struct(*v) == b);
  }
  CHECK_FALSE(parse_struct<T>(Bytes(T::kSize - 1, 0)).ok());
  CHECK(serialize_struct(T{}).size() == T::kSize);
}

ManipulateState64 header_for(uint32_t api) {
  ManipulateState64 h;
  h.api_number = api;
  h.return_status = kStatusPending;
  for (std::size_t i = 0; i < h.u.size(); ++i) h.u[i] = static_cast<uint8_t>(0xA0 + i);  // stale bytes
  return h;
}

}  // namespace

TEST_CASE("kd structs: sizes and exact round trips") {
  std::mt19937 rng(7);
  CHECK(Context::kSize == 0x4D0);
  CHECK(KSpecialRegisters::kSize == 0xE0);
  CHECK(WaitStateChange::kSize == 0xF0);
  CHECK(ManipulateState64::kSize == 0x38);
  CHECK(GetVersion64::kSize == 0x28);
  CHECK(DebugIo::kSize == 0x10);
  CHECK(ExceptionRecord64::kSize == 0x98);
  check_round_trip<Context>(rng);
  check_round_trip<XmmSaveArea32>(rng);
  check_round_trip<KSpecialRegisters>(rng);
  check_round_trip<ExceptionRecord64>(rng);
  check_round_trip<Exception64>(rng);
  check_round_trip<LoadSymbols64>(rng);
  check_round_trip<ControlReport>(rng);
  check_round_trip<WaitStateChange>(rng);
  check_round_trip<DebugIo>(rng);
  check_round_trip<GetVersion64>(rng);
  check_round_trip<ManipulateState64>(rng);
  check_round_trip<FileIo>(rng);
  check_round_trip<CreateFile>(rng);
}

TEST_CASE("kd structs: a structure given too few bytes names itself and both sizes") {
  auto c = parse_context(Bytes(3, 0));
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code == 22);
  CHECK(c.error().message == "CONTEXT: 3 bytes, need " + std::to_string(Context::kSize));
  auto v = parse_struct<GetVersion64>(Bytes());
  REQUIRE_FALSE(v.ok());
  CHECK(v.error().message == "structure: 0 bytes, need " + std::to_string(GetVersion64::kSize));
  auto m = parse_struct<ManipulateState64>(Bytes(ManipulateState64::kSize - 1, 0), "DBGKD_MANIPULATE_STATE64");
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().message ==
        "DBGKD_MANIPULATE_STATE64: " + std::to_string(ManipulateState64::kSize - 1) + " bytes, need " +
            std::to_string(ManipulateState64::kSize));
}

TEST_CASE("kd structs: AMD64 CONTEXT field offsets") {
  Context c;
  c.context_flags = 0x11111111;
  c.mx_csr = 0x22222222;
  c.seg_cs = 0x3333;
  c.seg_ss = 0x4444;
  c.eflags = 0x55555555;
  c.dr0 = 0x0D0;
  c.dr7 = 0x0D7;
  c.rax = 0xAAAA;
  c.rsp = 0x5555;
  c.r15 = 0xF15;
  c.rip = 0x1234567890ULL;
  c.flt_save.control_word = 0x027F;
  c.flt_save.mx_csr = 0x1F80;
  c.flt_save.xmm_registers[0] = {0x1111, 0x2222};
  c.flt_save.xmm_registers[15] = {0xF0F0, 0xF1F1};
  c.vector_register[25] = {0x2525, 0x2626};
  c.vector_control = 0x7C;
  c.debug_control = 0xDC;
  c.last_exception_from_rip = 0xEEFF;
  Bytes b = serialize_struct(c);
  REQUIRE(b.size() == 0x4D0);
  CHECK(le32(b, 0x30) == 0x11111111);
  CHECK(le32(b, 0x34) == 0x22222222);
  CHECK(le16(b, 0x38) == 0x3333);
  CHECK(le16(b, 0x42) == 0x4444);
  CHECK(le32(b, 0x44) == 0x55555555);
  CHECK(le64(b, 0x48) == 0x0D0);
  CHECK(le64(b, 0x70) == 0x0D7);
  CHECK(le64(b, 0x78) == 0xAAAA);
  CHECK(le64(b, 0x98) == 0x5555);
  CHECK(le64(b, 0xF0) == 0xF15);
  CHECK(le64(b, 0xF8) == 0x1234567890ULL);
  CHECK(le16(b, 0x100) == 0x027F);
  CHECK(le32(b, 0x118) == 0x1F80);
  CHECK(le64(b, 0x1A0) == 0x1111);  // Xmm0
  CHECK(le64(b, 0x1A8) == 0x2222);
  CHECK(le64(b, 0x290) == 0xF0F0);  // Xmm15
  CHECK(le64(b, 0x300 + 25 * 16) == 0x2525);
  CHECK(le64(b, 0x4A0) == 0x7C);
  CHECK(le64(b, 0x4A8) == 0xDC);
  CHECK(le64(b, 0x4C8) == 0xEEFF);
  CHECK(parse_context(b).value() == c);
}

TEST_CASE("kd structs: KSPECIAL_REGISTERS, state change and version offsets") {
  KSpecialRegisters k;
  k.cr3 = 0xC3;
  k.kernel_dr7 = 0xD7;
  k.gdtr.limit = 0x7F;
  k.gdtr.base = 0x6D7;
  k.idtr.base = 0x1D7;
  k.tr = 0x40;
  k.mx_csr = 0x1F80;
  k.msr_gs_base = 0x65;
  k.msr_syscall_mask = 0x4700;
  k.xcr0 = 7;
  Bytes b = serialize_struct(k);
  CHECK(le64(b, 0x10) == 0xC3);
  CHECK(le64(b, 0x48) == 0xD7);
  CHECK(le16(b, 0x56) == 0x7F);
  CHECK(le64(b, 0x58) == 0x6D7);
  CHECK(le64(b, 0x68) == 0x1D7);
  CHECK(le16(b, 0x70) == 0x40);
  CHECK(le32(b, 0x74) == 0x1F80);
  CHECK(le64(b, 0xA8) == 0x65);
  CHECK(le64(b, 0xD0) == 0x4700);
  CHECK(le64(b, 0xD8) == 7);
  // Longer (newer Windows) input parses; the tail is ignored.
  Bytes longer = b;
  longer.resize(0xF0, 0x99);
  CHECK(parse_special_registers(longer).value() == k);

  WaitStateChange w;
  w.new_state = kDbgKdExceptionStateChange;
  w.number_processors = 4;
  w.thread = 0x7777;
  w.program_counter = 0xFFFFF80000001000ULL;
  Exception64 e;
  e.record.exception_code = kStatusSingleStep;
  e.record.exception_address = 0x1000;
  e.record.number_parameters = 1;
  e.record.exception_information[14] = 0xE14;
  e.first_chance = 1;
  w.set_exception(e);
  w.control_report.dr6 = 0x4000;
  w.control_report.report_flags = kReportIncludesSegs | kReportStandardCs;
  w.control_report.seg_fs = 0x53;
  Bytes s = serialize_struct(w);
  CHECK(le32(s, 0x08) == 4);
  CHECK(le64(s, 0x10) == 0x7777);
  CHECK(le64(s, 0x18) == 0xFFFFF80000001000ULL);
  CHECK(le32(s, 0x20) == kStatusSingleStep);
  CHECK(le64(s, 0x30) == 0x1000);
  CHECK(le32(s, 0x38) == 1);
  CHECK(le64(s, 0x40 + 14 * 8) == 0xE14);
  CHECK(le32(s, 0x20 + 0x98) == 1);
  CHECK(le64(s, 0xC0) == 0x4000);
  CHECK(le16(s, 0xD6) == 3);
  CHECK(le16(s, 0xEE) == 0x53);
  CHECK(parse_struct<WaitStateChange>(s).value().exception() == e);

  LoadSymbols64 l;
  l.path_name_length = 12;
  l.base_of_dll = 0x96f000;
  l.process_id = ~0ULL;
  l.checksum = 0x149e3f;
  l.size_of_image = 0x17d000;
  l.unload_symbols = 1;
  Bytes lb = serialize_struct(l);
  CHECK(le64(lb, 0x08) == 0x96f000);
  CHECK(le32(lb, 0x18) == 0x149e3f);
  CHECK(le32(lb, 0x1C) == 0x17d000);
  CHECK(lb[0x20] == 1);

  GetVersion64 v;
  v.machine_type = kImageFileMachineAmd64;
  v.max_manipulate = 0x31;
  v.debugger_data_list = 0xDDDD;
  Bytes vb = serialize_struct(v);
  CHECK(le16(vb, 0x08) == 0x8664);
  CHECK(vb[0x0C] == 0x31);
  CHECK(le64(vb, 0x20) == 0xDDDD);
}

TEST_CASE("kd structs: message parsers reject malformed input") {
  struct Row {
    const char* name;
    bool ok;
  };
  Bytes sc(0xF0, 0);
  auto set32 = [](Bytes& b, std::size_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  set32(sc, 0, kDbgKdLoadSymbolsStateChange);
  set32(sc, 0x20, 1000);  // PathNameLength beyond the data: clamped, not trusted
  auto m = parse_state_change(sc);
  REQUIRE(m.ok());
  CHECK(m->path().empty());
  Bytes sc_bad = sc;
  set32(sc_bad, 0, 0x4000);
  Bytes dio(0x10, 0);
  set32(dio, 0, kDbgKdPrintStringApi);
  set32(dio, 8, 0xFFFFFFFF);
  auto d = parse_debug_io(dio);
  REQUIRE(d.ok());
  CHECK(d->text().empty());
  Bytes dio_bad = dio;
  set32(dio_bad, 0, 0x1234);
  std::vector<std::pair<std::string, bool>> results{
      {"state change short", parse_state_change(Bytes(0xEF, 0)).ok()},
      {"state change unknown NewState", parse_state_change(sc_bad).ok()},
      {"state change oversize", parse_state_change(Bytes(4001, 0)).ok()},
      {"debug io short", parse_debug_io(Bytes(0xF, 0)).ok()},
      {"debug io unknown api", parse_debug_io(dio_bad).ok()},
      {"file io short", parse_file_io(Bytes(0x3F, 0)).ok()},
      {"file io unknown api", parse_file_io(Bytes(0x40, 0)).ok()},
      {"manipulate short", parse_manipulate(Bytes(0x37, 0)).ok()},
      {"manipulate oversize", parse_manipulate(Bytes(4001, 0)).ok()},
      {"context short", parse_context(Bytes(0x4CF, 0)).ok()},
  };
  for (const auto& [name, ok] : results) {
    CAPTURE(name);
    CHECK_FALSE(ok);
  }
}

TEST_CASE("kd manipulate: request parsing edge cases") {
  // Unknown API: parses as Unsupported so the caller can answer.
  ManipulateState64 h = header_for(0x3199);
  auto r = parse_manipulate(serialize_struct(h));
  REQUIRE(r.ok());
  auto& u = std::get<req::Unsupported>(r->body);
  CHECK(u.api == 0x3199);
  CHECK_FALSE(u.known);
  auto known = parse_manipulate(serialize_struct(header_for(kDbgKdPageInApi)));
  CHECK(std::get<req::Unsupported>(known->body).known);

  // SetContext without a full CONTEXT: the request fails, the header parses.
  Bytes sc = serialize_struct(header_for(kDbgKdSetContextApi));
  sc.resize(0x38 + 0x100, 0);
  CHECK_FALSE(parse_manipulate(sc).ok());
  CHECK(parse_manipulate_header(sc).ok());

  // WriteVirtualMemory carries its data.
  ManipulateState64 w = header_for(kDbgKdWriteVirtualMemoryApi);
  set_union(w, MemoryTransfer64{0xFFFFF80000000000ULL, 3, 0});
  Bytes wb = serialize_struct(w);
  wb.insert(wb.end(), {0xCC, 0xCC, 0x90});
  auto wr = parse_manipulate(wb).value();
  auto& wm = std::get<req::WriteVirtualMemory>(wr.body);
  CHECK(wm.address == 0xFFFFF80000000000ULL);
  CHECK(wm.data == Bytes{0xCC, 0xCC, 0x90});

  // SearchMemory: pattern longer than the data is refused.
  ManipulateState64 s = header_for(kDbgKdSearchMemoryApi);
  set_union(s, SearchMemory64{0x1000, 0x100, 8});
  Bytes sb = serialize_struct(s);
  sb.insert(sb.end(), 4, 0x41);
  CHECK_FALSE(parse_manipulate(sb).ok());
  sb.insert(sb.end(), 4, 0x41);
  CHECK(std::get<req::SearchMemory>(parse_manipulate(sb)->body).pattern == Bytes(8, 0x41));

  // WriteMsr / ReadMsr.
  ManipulateState64 msr = header_for(kDbgKdWriteMachineSpecificRegister);
  set_union(msr, ReadWriteMsr{0xC0000082, 0x89ABCDEF, 0x01234567});
  auto wmsr = std::get<req::WriteMsr>(parse_manipulate(serialize_struct(msr))->body);
  CHECK(wmsr.msr == 0xC0000082);
  CHECK(wmsr.value == 0x0123456789ABCDEFULL);
}

TEST_CASE("kd manipulate: reply builders echo the request and set results") {
  ManipulateState64 rd = header_for(kDbgKdReadVirtualMemoryApi);
  set_union(rd, MemoryTransfer64{0x1000, 0x10000, 0xDEAD});
  Bytes big(5000, 0x5A);
  Bytes r = reply_read_memory(rd, kStatusSuccess, big);
  CHECK(r.size() == kPacketMaxSize);
  auto rh = parse_manipulate_header(r).value();
  CHECK(rh.return_status == kStatusSuccess);
  CHECK(union_view<MemoryTransfer64>(rh).actual_bytes == kMaxManipulateData);
  CHECK(union_view<MemoryTransfer64>(rh).transfer_count == 0x10000);  // echoed
  CHECK(rh.u[0x10] == rd.u[0x10]);                                     // stale bytes echoed
  CHECK(clamp_transfer(0x10000) == kMaxManipulateData);
  CHECK(clamp_transfer(16) == 16);

  Context c;
  c.rip = 0x4141414141414141ULL;
  ManipulateState64 gx = header_for(kDbgKdGetContextExApi);
  set_union(gx, ContextEx{0xF8, 8, 0});
  Bytes gxr = reply_get_context_ex(gx, kStatusSuccess, c);
  CHECK(gxr.size() == 0x38 + 8);
  CHECK(union_view<ContextEx>(parse_manipulate_header(gxr).value()).bytes_copied == 8);
  CHECK(gxr[0x38] == 0x41);
  set_union(gx, ContextEx{0x4C8, 0x100, 0});  // runs past the end: clamped
  CHECK(reply_get_context_ex(gx, kStatusSuccess, c).size() == 0x38 + 8);
  set_union(gx, ContextEx{0xFFFFFFFF, 0xFFFFFFFF, 0});
  CHECK(reply_get_context_ex(gx, kStatusSuccess, c).size() == 0x38);

  ManipulateState64 bp = header_for(kDbgKdWriteBreakPointApi);
  set_union(bp, WriteBreakPoint64{0x401000, 0});
  auto bph = parse_manipulate_header(reply_write_breakpoint(bp, kStatusSuccess, 5)).value();
  CHECK(union_view<WriteBreakPoint64>(bph).break_point_handle == 5);
  CHECK(union_view<WriteBreakPoint64>(bph).break_point_address == 0x401000);

  ManipulateState64 gc = header_for(kDbgKdGetContextApi);
  CHECK(reply_get_context(gc, kStatusSuccess, c).size() == 0x38 + 0x4D0);
  CHECK(reply_status(gc, kStatusUnsuccessful).size() == 0x38);

  ManipulateState64 msr = header_for(kDbgKdReadMachineSpecificRegister);
  auto mh = parse_manipulate_header(reply_read_msr(msr, kStatusSuccess, 0x1122334455667788ULL)).value();
  CHECK(union_view<ReadWriteMsr>(mh).data_value_low == 0x55667788);
  CHECK(union_view<ReadWriteMsr>(mh).data_value_high == 0x11223344);

  ManipulateState64 io = header_for(kDbgKdReadIoSpaceApi);
  CHECK(union_view<ReadWriteIo64>(parse_manipulate_header(reply_read_io(io, 0, 0xAB)).value()).data_value == 0xAB);

  ManipulateState64 q = header_for(kDbgKdQuerySpecialCallsApi);
  std::vector<uint64_t> calls{1, 2, 3};
  Bytes qr = reply_query_special_calls(q, kStatusSuccess, calls);
  CHECK(qr.size() == 0x38 + 24);
  CHECK(qr[0x10] == 3);

  ManipulateState64 wm = header_for(kDbgKdWriteControlSpaceApi);
  set_union(wm, MemoryTransfer64{2, 0xE0, 0});
  CHECK(union_view<MemoryTransfer64>(parse_manipulate_header(reply_write_memory(wm, 0, 0xE0)).value()).actual_bytes ==
        0xE0);
}

TEST_CASE("kd structs: random payloads through every parser") {
  std::mt19937 rng(99);
  int ok = 0;
  for (int i = 0; i < 5000; ++i) {
    Bytes b = random_bytes(rng, rng() % 1400);
    if (b.size() >= 4 && rng() % 2) {
      // Plausible API numbers so the typed paths run.
      uint32_t api = rng() % 3 == 0 ? 0x3130 + rng() % 0x32 : rng() % 3 == 1 ? 0x3030 + rng() % 4 : 0x3230 + rng() % 2;
      for (int k = 0; k < 4; ++k) b[k] = static_cast<uint8_t>(api >> (8 * k));
    }
    ok += parse_manipulate(b).ok();
    ok += parse_state_change(b).ok();
    ok += parse_debug_io(b).ok();
    ok += parse_file_io(b).ok();
    ok += parse_context(b).ok();
    ok += parse_special_registers(b).ok();
    if (auto sc = parse_state_change(b)) {
      (void)sc->path();
      (void)sc->header.exception();
      (void)sc->header.load_symbols();
    }
    if (auto d = parse_debug_io(b)) (void)d->text();
  }
  CHECK(ok > 0);
}

// ByteReader/ByteWriter copy whole fields (and structures copy byte arrays
// whole); these pin down the little-endian layout and the edge behaviour
// the per-byte versions had.
TEST_CASE("kd wire: ByteWriter writes little-endian fields and drops what does not fit") {
  ByteWriter w(16);
  CHECK(w.size() == 16);
  w.u8(0, 0x11);
  w.u16(1, 0x2233);
  w.u32(3, 0x44556677);
  w.u64(7, 0x8899aabbccddeeffull);
  CHECK(w.bytes() == Bytes{0x11, 0x33, 0x22, 0x77, 0x66, 0x55, 0x44, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0});
  // A field that would cross the end is dropped whole, as is one past it.
  w.u32(13, 0xdeadbeef);
  w.u64(15, 0x0102030405060708ull);
  w.u16(16, 0xffff);
  w.u8(17, 0xff);
  w.u64(SIZE_MAX - 2, 1);
  CHECK(w.bytes().size() == 16);
  CHECK(w.bytes()[13] == 0x99);
  CHECK(w.bytes()[14] == 0x88);
  CHECK(w.bytes()[15] == 0);
  w.u8(15, 0x5a);  // the last byte still takes a 1-byte field
  CHECK(w.bytes()[15] == 0x5a);
  w.raw(14, as_bytes("xyz"));  // crosses the end: dropped
  CHECK(w.bytes()[14] == 0x88);
  w.raw(14, as_bytes("xy"));
  CHECK(w.bytes()[14] == 'x');
  CHECK(w.bytes()[15] == 'y');
}

TEST_CASE("kd wire: ByteReader reads little-endian fields; out of range reads 0 and latches") {
  Bytes b{0x11, 0x33, 0x22, 0x77, 0x66, 0x55, 0x44, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88};
  ByteReader r(b);
  CHECK(r.u8(0) == 0x11);
  CHECK(r.u16(1) == 0x2233);
  CHECK(r.u32(3) == 0x44556677u);
  CHECK(r.u64(7) == 0x8899aabbccddeeffull);
  CHECK(r.u8(14) == 0x88);
  CHECK(r.ok());
  CHECK(r.u16(14) == 0);  // one byte short
  CHECK(!r.ok());
  ByteReader r2(b);
  CHECK(r2.u64(SIZE_MAX - 2) == 0);
  CHECK(!r2.ok());
  ByteReader r3(b);
  CHECK(r3.u32(15) == 0);  // at the end
  CHECK(!r3.ok());
  CHECK(r3.u8(0) == 0x11);  // later reads still work; ok() stays false
  CHECK(!r3.ok());
}

TEST_CASE("kd wire: byte arrays inside structures are copied at their offsets") {
  // The XMM save area (CONTEXT's FLTSAVE) ends in a 96-byte reserved
  // array: a distinct value per byte must land where it was.
  Bytes b(XmmSaveArea32::kSize);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 31 + 7);
  auto s = parse_struct<XmmSaveArea32>(b);
  REQUIRE(s.ok());
  CHECK(serialize_struct(*s) == b);
  for (std::size_t i = 0; i < s->reserved4.size(); ++i) CHECK(s->reserved4[i] == b[XmmSaveArea32::kSize - 96 + i]);

  // Serialized into a buffer too small for it (never done by the library,
  // which sizes buffers from kSize): the fields that fit are written, those
  // that do not are dropped, bytes of an array one by one.
  ByteWriter w(XmmSaveArea32::kSize - 10);
  detail::Store store{w, 0};
  XmmSaveArea32::fields(*s, store);
  Bytes want(b.begin(), b.end() - 10);
  CHECK(w.bytes() == want);
}

// Test vectors from a real WinDbg session (KDNET-carried KD packets, see
// tests/data/kd/README.md): every packet decodes, every
// host request parses, and the replies we build from the target's values are
// byte-identical to what Windows sent.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/kd/framing.h"
#include "protocol/kd/manipulate.h"
#include "protocol/kd/session_state.h"
#include "protocol/kd/structs.h"

using namespace dbgstub::kd;

namespace {

struct Row {
  bool host_to_target;
  Bytes bytes;  // 16-byte header + payload, no trailer
};

Bytes from_hex(const std::string& s) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
  return out;
}

std::filesystem::path capture_path() {
  // $DBGSTUB_KD_VECTORS overrides; otherwise the copy kept in the
  // repository (tests/data/kd, from shared/kd), from the source folder
  // CMake names (not __FILE__: a compiler cache may make it relative).
  if (const char* env = std::getenv("DBGSTUB_KD_VECTORS"); env && *env) return env;
  return std::filesystem::path(DBGSTUB_SOURCE_DIR) / "tests" / "data" / "kd" / "windbg-session.tsv";
}

const std::vector<Row>& capture() {
  static const std::vector<Row> rows = [] {
    std::vector<Row> out;
    std::ifstream in(capture_path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      auto tab = line.find('\t');
      if (tab == std::string::npos) continue;
      out.push_back(Row{line.substr(0, tab) == "H->T", from_hex(line.substr(tab + 1))});
    }
    return out;
  }();
  return rows;
}

void require_capture() {
  INFO("KD test vectors not found at " << capture_path().string()
                                       << " (tests/data/kd/ in the repository)");
  REQUIRE(capture().size() == 527);
}

Bytes payload_of(const Row& r) { return Bytes(r.bytes.begin() + 16, r.bytes.end()); }
PacketHeader header_of(const Row& r) { return decode_header(r.bytes).value(); }

bool is_kdnet_artifact(const Row& r) { return r.bytes.size() == 16 && r.bytes[0] == 0 && r.bytes[1] == 0; }

// Rebuilds the target's reply to `request` from the values in `reply`.
struct Reply {
  ManipulateState64 header;
  Bytes data;
};

Bytes rebuild_reply(const ManipulateRequest& request, const Reply& reply) {
  uint32_t status = reply.header.return_status;
  const ManipulateState64& h = request.header;
  return std::visit(
      [&](const auto& body) -> Bytes {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, req::ReadVirtualMemory> || std::is_same_v<T, req::ReadControlSpace> ||
                      std::is_same_v<T, req::ReadPhysicalMemory>) {
          return reply_read_memory(h, status, reply.data);
        } else if constexpr (std::is_same_v<T, req::WriteVirtualMemory> || std::is_same_v<T, req::WriteControlSpace> ||
                             std::is_same_v<T, req::WritePhysicalMemory>) {
          return reply_write_memory(h, status, union_view<MemoryTransfer64>(reply.header).actual_bytes);
        } else if constexpr (std::is_same_v<T, req::GetContext>) {
          if (reply.data.empty()) return reply_status(h, status);
          return reply_get_context(h, status, parse_context(reply.data).value());
        } else if constexpr (std::is_same_v<T, req::GetContextEx>) {
          return reply_get_context_ex_bytes(h, status, reply.data);
        } else if constexpr (std::is_same_v<T, req::GetVersion>) {
          return reply_get_version(h, status, union_view<GetVersion64>(reply.header));
        } else if constexpr (std::is_same_v<T, req::WriteBreakPoint>) {
          return reply_write_breakpoint(h, status, union_view<WriteBreakPoint64>(reply.header).break_point_handle);
        } else {
          return reply_status(h, status);
        }
      },
      request.body);
}

}  // namespace

TEST_CASE("kd capture: every packet decodes with a consistent header and checksum") {
  require_capture();
  int artifacts = 0, data = 0, control = 0;
  for (std::size_t i = 0; i < capture().size(); ++i) {
    const Row& r = capture()[i];
    CAPTURE(i);
    if (is_kdnet_artifact(r)) {
      // One 16-byte KDNET record with leader 0 opens the capture; not KD.
      ++artifacts;
      CHECK_FALSE(decode_unframed_packet(r.bytes).ok());
      continue;
    }
    auto p = decode_unframed_packet(r.bytes);
    REQUIRE_MESSAGE(p.ok(), p.error().message);
    if (p->header.is_control()) {
      ++control;
      CHECK(p->header.byte_count == 0);
      CHECK(p->header.checksum == 0);
      CHECK(p->header.type >= kPacketTypeKdAcknowledge);
      CHECK(p->header.type <= kPacketTypeKdReset);
      // Our control framing gives the same bytes.
      CHECK(frame_control_packet(p->header.type, p->header.id) == r.bytes);
      continue;
    }
    ++data;
    // kdcom framing of the same packet: header identical, 0xAA appended,
    // and the framer gives the packet back.
    Bytes framed = frame_data_packet(p->header.type, p->header.id, p->payload).value();
    CHECK(Bytes(framed.begin(), framed.end() - 1) == r.bytes);
    KdFramer f;
    std::vector<KdEvent> ev;
    f.feed(ByteView(framed), ev);
    REQUIRE(ev.size() == 1);
    REQUIRE(std::holds_alternative<DataPacket>(ev[0]));
    CHECK(std::get<DataPacket>(ev[0]).payload == p->payload);
  }
  CHECK(artifacts == 1);
  CHECK(control == 263);
  CHECK(data == 263);
}

TEST_CASE("kd capture: every host manipulate request parses into a known API") {
  require_capture();
  std::map<uint32_t, int> seen;
  for (const Row& r : capture()) {
    if (!r.host_to_target || is_kdnet_artifact(r) || header_of(r).type != kPacketTypeKdStateManipulate) continue;
    Bytes pl = payload_of(r);
    auto req = parse_manipulate(pl);
    REQUIRE_MESSAGE(req.ok(), req.error().message);
    CHECK_FALSE(std::holds_alternative<req::Unsupported>(req->body));
    CHECK(std::string(manipulate_api_name(req->api())) != "?unknown");
    // The header round-trips (stale bytes included).
    Bytes again = serialize_struct(req->header);
    CHECK(Bytes(pl.begin(), pl.begin() + 0x38) == again);
    ++seen[req->api()];
  }
  CHECK(seen[kDbgKdReadVirtualMemoryApi] == 44);
  CHECK(seen[kDbgKdGetContextApi] == 5);
  CHECK(seen[kDbgKdSetContextApi] == 2);
  CHECK(seen[kDbgKdRestoreBreakPointApi] == 32);
  CHECK(seen[kDbgKdContinueApi] == 1);
  CHECK(seen[kDbgKdReadControlSpaceApi] == 3);
  CHECK(seen[kDbgKdWriteControlSpaceApi] == 2);
  CHECK(seen[kDbgKdContinueApi2] == 2);
  CHECK(seen[kDbgKdGetVersionApi] == 1);
  CHECK(seen[kDbgKdGetContextExApi] == 3);
}

TEST_CASE("kd capture: typed request fields") {
  require_capture();
  const auto& rows = capture();
  // Row 11: ReadVirtualMemory of 0x10 bytes at 0xad5e60 (PsLoadedModuleList).
  auto rd = parse_manipulate(payload_of(rows[11])).value();
  auto& m = std::get<req::ReadVirtualMemory>(rd.body);
  CHECK(m.address == 0xad5e60);
  CHECK(m.transfer_count == 0x10);
  // Row 203: ReadControlSpace KSPECIAL, 0xE0 bytes.
  auto cs = parse_manipulate(payload_of(rows[203])).value();
  auto& c = std::get<req::ReadControlSpace>(cs.body);
  CHECK(c.address == kAmd64DebugControlSpaceKspecial);
  CHECK(c.transfer_count == KSpecialRegisters::kSize);
  // Row 211: SetContext with a full CONTEXT.
  auto sc = parse_manipulate(payload_of(rows[211])).value();
  auto& s = std::get<req::SetContext>(sc.body);
  CHECK(s.context.context_flags == 0x10001B);
  CHECK(serialize_struct(s.context) == sc.data);
  // Row 231: Continue2 with DBG_CONTINUE.
  auto c2 = parse_manipulate(payload_of(rows[231])).value();
  auto& k = std::get<req::Continue2>(c2.body);
  CHECK(k.continue_status == kDbgContinue);
  CHECK(k.trace_flag == 0);
  CHECK(k.dr7 == 0x400);
  // Row 525: Continue.
  auto c1 = parse_manipulate(payload_of(rows[525])).value();
  CHECK(std::get<req::Continue>(c1.body).continue_status == kDbgContinue);
  // Row 55: RestoreBreakPoint handle 1.
  auto rb = parse_manipulate(payload_of(rows[55])).value();
  CHECK(std::get<req::RestoreBreakPoint>(rb.body).handle == 1);
}

TEST_CASE("kd capture: replies rebuilt from the target's values are byte-identical") {
  require_capture();
  std::optional<ManipulateRequest> last_request;
  int replies = 0, rebuilt = 0;
  for (std::size_t i = 0; i < capture().size(); ++i) {
    const Row& r = capture()[i];
    if (is_kdnet_artifact(r) || header_of(r).type != kPacketTypeKdStateManipulate) continue;
    Bytes pl = payload_of(r);
    if (r.host_to_target) {
      last_request = parse_manipulate(pl).value();
      continue;
    }
    CAPTURE(i);
    ++replies;
    // Replies need not carry what a request must (SetContext's CONTEXT),
    // so only the header is parsed.
    auto header = parse_manipulate_header(pl);
    REQUIRE(header.ok());
    REQUIRE(last_request.has_value());
    REQUIRE(last_request->api() == header->api_number);
    Bytes ours = rebuild_reply(*last_request, Reply{*header, Bytes(pl.begin() + 0x38, pl.end())});
    CHECK(ours.size() == pl.size());
    CHECK(ours == pl);
    rebuilt += ours == pl;
  }
  CHECK(replies == 92);
  CHECK(rebuilt == replies);
}

TEST_CASE("kd capture: GetVersion, CONTEXT and KSPECIAL_REGISTERS values") {
  require_capture();
  const auto& rows = capture();
  auto v = union_view<GetVersion64>(parse_manipulate_header(payload_of(rows[9])).value());
  CHECK(v.major_version == 0x040f);
  CHECK(v.minor_version == 10586);
  CHECK(v.protocol_version == kDbgKd64BitProtocolVersion2);
  CHECK(v.kd_secondary_version == kKdSecondaryVersionAmd64Context);
  CHECK(v.machine_type == kImageFileMachineAmd64);
  CHECK(v.kern_base == 0x96f000);
  CHECK(v.ps_loaded_module_list == 0xad5e60);

  auto gc = parse_manipulate(payload_of(rows[193])).value();
  auto ctx = parse_context(gc.data).value();
  CHECK(ctx.context_flags == 0x10001B);
  CHECK(ctx.seg_cs == 0x10);
  CHECK(ctx.eflags == 0x6);
  CHECK(ctx.rsp == 0x1a6d98);
  CHECK(ctx.rip == 0xa79685);
  CHECK(serialize_struct(ctx) == gc.data);

  auto cs = parse_manipulate(payload_of(rows[205])).value();
  REQUIRE(cs.data.size() == KSpecialRegisters::kSize);
  auto k = parse_special_registers(cs.data).value();
  CHECK(k.cr0 == 0x80000013);
  CHECK(k.cr3 == 0x1ab000);
  CHECK(k.cr4 == 0x40668);
  CHECK(k.gdtr.limit == 0x7f);
  CHECK(k.gdtr.base == 0x1a9000);
  CHECK(k.xcr0 == 7);
  CHECK(serialize_struct(k) == cs.data);
}

TEST_CASE("kd capture: state changes, debug prints and file I/O parse and round-trip") {
  require_capture();
  int exceptions = 0, loads = 0, prints = 0, files = 0;
  for (const Row& r : capture()) {
    if (is_kdnet_artifact(r)) continue;
    auto h = header_of(r);
    Bytes pl = payload_of(r);
    if (h.type == kPacketTypeKdStateChange64) {
      auto sc = parse_state_change(pl);
      REQUIRE(sc.ok());
      CHECK(serialize_state_change(*sc) == pl);
      CHECK(sc->header.number_processors == 1);
      if (sc->header.kind() == kDbgKdExceptionStateChange) {
        ++exceptions;
        auto e = sc->header.exception();
        CHECK(e.record.exception_code == kStatusBreakpoint);
        CHECK(e.record.exception_address == 0x9cf07d);
        CHECK(e.first_chance == 1);
        CHECK(sc->header.program_counter == 0x9cf07e);
        CHECK(sc->header.control_report.seg_cs == 0x10);
        CHECK(sc->header.control_report.instruction_count == 16);
        CHECK(sc->header.control_report.instruction_stream[0] == 0xcc);
      } else {
        ++loads;
        CHECK(sc->header.kind() == kDbgKdLoadSymbolsStateChange);
        if (!sc->data.empty()) {
          CHECK(sc->path() == "winload.efi");
          CHECK(sc->header.load_symbols().base_of_dll == 0x96f000);
        }
      }
    } else if (h.type == kPacketTypeKdDebugIo) {
      auto d = parse_debug_io(pl);
      REQUIRE(d.ok());
      CHECK(serialize_debug_io(*d) == pl);
      CHECK(d->header.api_number == kDbgKdPrintStringApi);
      CHECK(d->text().size() == d->header.length_of_string);
      ++prints;
    } else if (h.type == kPacketTypeKdFileIo) {
      auto f = parse_file_io(pl);
      REQUIRE(f.ok());
      CHECK(serialize_file_io(*f) == pl);
      CHECK(f->header.api_number == kDbgKdCreateFileApi);
      if (r.host_to_target) CHECK(f->header.status == kStatusNoSuchFile);
      ++files;
    }
  }
  CHECK(exceptions == 1);
  CHECK(loads == 2);
  CHECK(prints == 7);
  CHECK(files == 66);

  auto first = parse_debug_io(payload_of(capture()[1])).value();
  CHECK(first.text() == "BD: Boot Debugger Initialized\n");
  // make_print_string builds the same layout (stale second length aside).
  auto ours = make_print_string("BD: Boot Debugger Initialized\n");
  ours.header.length_of_string_read = first.header.length_of_string_read;
  CHECK(serialize_debug_io(ours) == payload_of(capture()[1]));
}

TEST_CASE("kd capture: RESEND -> RESET -> RESET -> resend exchange in the session state machine") {
  require_capture();
  const auto& rows = capture();
  // The capture (KDNET ids) around rows 191-203:
  //   191 H->T GetContext           192 T->H ACK
  //   193 T->H reply (never ACKed)  194 H->T next GetContext
  //   195 T->H RESEND               196 H->T same GetContext again
  //   197 T->H ACK                  198 T->H reply
  //   199 H->T RESET                200 T->H RESET
  //   201 T->H reply resent         202 H->T ACK
  //   203 H->T ReadControlSpace
  // Replayed with kdcom ids.
  auto ctl = [](const Row& r) { return header_of(r); };
  CHECK(ctl(rows[195]).type == kPacketTypeKdResend);
  CHECK(ctl(rows[199]).type == kPacketTypeKdReset);
  CHECK(ctl(rows[200]).type == kPacketTypeKdReset);

  SessionState s;
  // Earlier traffic: our state change acknowledged.
  s.send(kPacketTypeKdStateChange64, payload_of(rows[5])).value();
  REQUIRE(s.on_event(ControlPacket{kPacketTypeKdAcknowledge, 0x80800000}).acked);

  auto a191 = s.on_event(DataPacket{kPacketTypeKdStateManipulate, 0x80800000, payload_of(rows[191])});
  REQUIRE(a191.deliver.has_value());
  REQUIRE(a191.send.size() == 1);
  CHECK(decode_header(a191.send[0])->type == ctl(rows[192]).type);

  Bytes r193 = s.send(kPacketTypeKdStateManipulate, payload_of(rows[193])).value();
  CHECK(decode_header(r193)->id == 0x80800001);

  // 194: the host's next request arrives instead of an ACK.
  auto a194 = s.on_event(DataPacket{kPacketTypeKdStateManipulate, 0x80800001, payload_of(rows[194])});
  CHECK_FALSE(a194.deliver.has_value());
  CHECK(a194.acked);
  REQUIRE(a194.send.size() == 1);
  CHECK(a194.send[0] == rows[195].bytes);  // RESEND, id 0: same bytes as the capture

  // 196: sent again, now acknowledged and delivered.
  auto a196 = s.on_event(DataPacket{kPacketTypeKdStateManipulate, 0x80800001, payload_of(rows[196])});
  REQUIRE(a196.deliver.has_value());
  CHECK(a196.deliver->payload == payload_of(rows[194]));
  REQUIRE(a196.send.size() == 1);
  CHECK(decode_header(a196.send[0])->type == kPacketTypeKdAcknowledge);
  CHECK(decode_header(a196.send[0])->id == 0x80800001);

  Bytes r198 = s.send(kPacketTypeKdStateManipulate, payload_of(rows[198])).value();
  CHECK(decode_header(r198)->id == 0x80800000);

  // 199: RESET -> RESET (200) and the pending reply again (201).
  auto a199 = s.on_event(ControlPacket{kPacketTypeKdReset, 0});
  CHECK(a199.reset);
  REQUIRE(a199.send.size() == 2);
  auto h200 = decode_header(a199.send[0]).value();
  CHECK(h200.is_control());
  CHECK(h200.type == ctl(rows[200]).type);
  CHECK(h200.byte_count == 0);
  auto h201 = decode_header(a199.send[1]).value();
  CHECK(h201.id == kInitialPacketId);
  CHECK(h201.checksum == ctl(rows[201]).checksum);
  CHECK(Bytes(a199.send[1].begin() + 16, a199.send[1].end() - 1) == payload_of(rows[201]));

  // 202: ACK of the resent reply.
  CHECK(s.on_event(ControlPacket{kPacketTypeKdAcknowledge, kInitialPacketId}).acked);
  // 203: the host restarts its ids too.
  auto a203 = s.on_event(DataPacket{kPacketTypeKdStateManipulate, kInitialPacketId, payload_of(rows[203])});
  CHECK(a203.deliver.has_value());
}

TEST_CASE("kd capture: initial RESEND of the first debug print") {
  require_capture();
  const auto& rows = capture();
  SessionState s;
  Bytes first = s.send(kPacketTypeKdDebugIo, payload_of(rows[1])).value();
  CHECK(decode_header(first)->id == (kInitialPacketId | kSyncPacketId));
  auto a = s.on_event(ControlPacket{header_of(rows[2]).type, 0});
  REQUIRE(a.send.size() == 1);
  CHECK(a.send[0] == first);
  CHECK(payload_of(rows[3]) == payload_of(rows[1]));
  CHECK(s.on_event(ControlPacket{kPacketTypeKdAcknowledge, kInitialPacketId}).acked);
}

TEST_CASE("kd capture: mutated packets never crash the parsers") {
  require_capture();
  std::mt19937 rng(4242);
  int parsed = 0;
  for (int round = 0; round < 20; ++round) {
    for (const Row& r : capture()) {
      if (is_kdnet_artifact(r) || r.bytes.size() <= 16) continue;
      Bytes pl = payload_of(r);
      // Flip a few bytes, sometimes truncate or extend.
      for (int k = 0; k < 3; ++k) pl[rng() % pl.size()] = static_cast<uint8_t>(rng());
      if (rng() % 4 == 0) pl.resize(rng() % (pl.size() + 1));
      if (rng() % 8 == 0) pl.resize(pl.size() + rng() % 5000, 0xEE);
      parsed += parse_manipulate(pl).ok();
      parsed += parse_state_change(pl).ok();
      parsed += parse_debug_io(pl).ok();
      parsed += parse_file_io(pl).ok();
      if (auto h = parse_manipulate_header(pl)) {
        // Replies are bounded whatever the request claims.
        Bytes big(8000, 1);
        CHECK(reply_read_memory(*h, 0, big).size() <= kPacketMaxSize);
        CHECK(reply_get_context_ex(*h, 0, Context{}).size() <= kPacketMaxSize);
      }
    }
  }
  CHECK(parsed > 0);
}

// KD protocol structures for AMD64 targets (windbgkd.h / wdbgexts.h /
// winnt.h layouts) as typed values with bounds-checked little-endian parse
// and exact-size serialize. Every byte of each structure is a field
// (alignment padding included), so parse then serialize reproduces the
// input byte for byte; WinDbg and the kernel leave stale bytes in padding
// and unused union space, and echoing them keeps replies identical.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/result.h"
#include "protocol/kd/wire.h"

namespace dbgstub::kd {

// ---- Packet types (KD_PACKET.PacketType) -------------------------------
inline constexpr uint16_t kPacketTypeUnused = 0;
inline constexpr uint16_t kPacketTypeKdStateChange32 = 1;
inline constexpr uint16_t kPacketTypeKdStateManipulate = 2;
inline constexpr uint16_t kPacketTypeKdDebugIo = 3;
inline constexpr uint16_t kPacketTypeKdAcknowledge = 4;
inline constexpr uint16_t kPacketTypeKdResend = 5;
inline constexpr uint16_t kPacketTypeKdReset = 6;
inline constexpr uint16_t kPacketTypeKdStateChange64 = 7;
inline constexpr uint16_t kPacketTypeKdPollBreakin = 8;
inline constexpr uint16_t kPacketTypeKdTraceIo = 9;
inline constexpr uint16_t kPacketTypeKdControlRequest = 10;
inline constexpr uint16_t kPacketTypeKdFileIo = 11;
inline constexpr uint16_t kPacketTypeMax = 12;

// ---- Wait state changes (DBGKD_ANY_WAIT_STATE_CHANGE.NewState) ----------
inline constexpr uint32_t kDbgKdExceptionStateChange = 0x3030;
inline constexpr uint32_t kDbgKdLoadSymbolsStateChange = 0x3031;
inline constexpr uint32_t kDbgKdCommandStringStateChange = 0x3032;
inline constexpr uint32_t kDbgKdMaximumStateChange = 0x3033;
inline constexpr uint32_t kDbgKdAlternateStateChange = 0x10000;  // or-ed in

// ---- Manipulate API numbers (DBGKD_MANIPULATE_STATE64.ApiNumber) --------
inline constexpr uint32_t kDbgKdMinimumManipulate = 0x3130;
inline constexpr uint32_t kDbgKdReadVirtualMemoryApi = 0x3130;
inline constexpr uint32_t kDbgKdWriteVirtualMemoryApi = 0x3131;
inline constexpr uint32_t kDbgKdGetContextApi = 0x3132;
inline constexpr uint32_t kDbgKdSetContextApi = 0x3133;
inline constexpr uint32_t kDbgKdWriteBreakPointApi = 0x3134;
inline constexpr uint32_t kDbgKdRestoreBreakPointApi = 0x3135;
inline constexpr uint32_t kDbgKdContinueApi = 0x3136;
inline constexpr uint32_t kDbgKdReadControlSpaceApi = 0x3137;
inline constexpr uint32_t kDbgKdWriteControlSpaceApi = 0x3138;
inline constexpr uint32_t kDbgKdReadIoSpaceApi = 0x3139;
inline constexpr uint32_t kDbgKdWriteIoSpaceApi = 0x313A;
inline constexpr uint32_t kDbgKdRebootApi = 0x313B;
inline constexpr uint32_t kDbgKdContinueApi2 = 0x313C;
inline constexpr uint32_t kDbgKdReadPhysicalMemoryApi = 0x313D;
inline constexpr uint32_t kDbgKdWritePhysicalMemoryApi = 0x313E;
inline constexpr uint32_t kDbgKdQuerySpecialCallsApi = 0x313F;
inline constexpr uint32_t kDbgKdSetSpecialCallApi = 0x3140;
inline constexpr uint32_t kDbgKdClearSpecialCallsApi = 0x3141;
inline constexpr uint32_t kDbgKdSetInternalBreakPointApi = 0x3142;
inline constexpr uint32_t kDbgKdGetInternalBreakPointApi = 0x3143;
inline constexpr uint32_t kDbgKdReadIoSpaceExtendedApi = 0x3144;
inline constexpr uint32_t kDbgKdWriteIoSpaceExtendedApi = 0x3145;
inline constexpr uint32_t kDbgKdGetVersionApi = 0x3146;
inline constexpr uint32_t kDbgKdWriteBreakPointExApi = 0x3147;
inline constexpr uint32_t kDbgKdRestoreBreakPointExApi = 0x3148;
inline constexpr uint32_t kDbgKdCauseBugCheckApi = 0x3149;
inline constexpr uint32_t kDbgKdSwitchProcessor = 0x3150;
inline constexpr uint32_t kDbgKdPageInApi = 0x3151;
inline constexpr uint32_t kDbgKdReadMachineSpecificRegister = 0x3152;
inline constexpr uint32_t kDbgKdWriteMachineSpecificRegister = 0x3153;
inline constexpr uint32_t kOldVlm1 = 0x3154;
inline constexpr uint32_t kOldVlm2 = 0x3155;
inline constexpr uint32_t kDbgKdSearchMemoryApi = 0x3156;
inline constexpr uint32_t kDbgKdGetBusDataApi = 0x3157;
inline constexpr uint32_t kDbgKdSetBusDataApi = 0x3158;
inline constexpr uint32_t kDbgKdCheckLowMemoryApi = 0x3159;
inline constexpr uint32_t kDbgKdClearAllInternalBreakpointsApi = 0x315A;
inline constexpr uint32_t kDbgKdFillMemoryApi = 0x315B;
inline constexpr uint32_t kDbgKdQueryMemoryApi = 0x315C;
inline constexpr uint32_t kDbgKdSwitchPartition = 0x315D;
inline constexpr uint32_t kDbgKdWriteCustomBreakpointApi = 0x315E;
inline constexpr uint32_t kDbgKdGetContextExApi = 0x315F;
inline constexpr uint32_t kDbgKdSetContextExApi = 0x3160;
inline constexpr uint32_t kDbgKdMaximumManipulate = 0x3161;

// ---- Debug I/O, trace I/O, control requests, file I/O ---------------------
inline constexpr uint32_t kDbgKdPrintStringApi = 0x3230;
inline constexpr uint32_t kDbgKdGetStringApi = 0x3231;
inline constexpr uint32_t kDbgKdPrintTraceApi = 0x3330;
inline constexpr uint32_t kDbgKdRequestHardwareBp = 0x4300;
inline constexpr uint32_t kDbgKdReleaseHardwareBp = 0x4301;
inline constexpr uint32_t kDbgKdCreateFileApi = 0x3430;
inline constexpr uint32_t kDbgKdReadFileApi = 0x3431;
inline constexpr uint32_t kDbgKdWriteFileApi = 0x3432;
inline constexpr uint32_t kDbgKdCloseFileApi = 0x3433;

// ---- Misc windbgkd.h constants -------------------------------------------
inline constexpr uint16_t kReportIncludesSegs = 0x0001;
inline constexpr uint16_t kReportStandardCs = 0x0002;
inline constexpr uint8_t kDbgKd64BitProtocolVersion2 = 6;
inline constexpr uint16_t kDbgKdVersFlagMp = 0x0001;
inline constexpr uint16_t kDbgKdVersFlagData = 0x0002;
inline constexpr uint16_t kDbgKdVersFlagPtr64 = 0x0004;
inline constexpr uint16_t kDbgKdVersFlagNoMm = 0x0008;
inline constexpr uint16_t kDbgKdVersFlagHss = 0x0010;
inline constexpr uint16_t kDbgKdVersFlagPartitions = 0x0020;
inline constexpr uint16_t kImageFileMachineAmd64 = 0x8664;
// DBGKD_MAJOR_TYPES: the OS type in the high byte of MajorVersion.
inline constexpr uint16_t kDbgKdMajorNt = 0;
inline constexpr uint16_t kDbgKdMajorXbox = 1;
inline constexpr uint16_t kDbgKdMajorBig = 2;
inline constexpr uint16_t kDbgKdMajorExdi = 3;
inline constexpr uint16_t kDbgKdMajorNtbd = 4;
inline constexpr uint16_t kDbgKdMajorEfi = 5;
inline constexpr uint16_t kDbgKdMajorTnt = 6;
inline constexpr uint16_t kDbgKdMajorSingularity = 7;
inline constexpr uint16_t kDbgKdMajorHypervisor = 8;
inline constexpr uint16_t kDbgKdMajorMidori = 9;
constexpr uint16_t dbgkd_major_type(uint16_t major_version) { return static_cast<uint16_t>(major_version >> 8); }
inline constexpr uint8_t kKdSecondaryVersionAmd64Context = 2;
inline constexpr uint64_t kAmd64DebugControlSpaceKpcr = 0;
inline constexpr uint64_t kAmd64DebugControlSpaceKprcb = 1;
inline constexpr uint64_t kAmd64DebugControlSpaceKspecial = 2;
inline constexpr uint64_t kAmd64DebugControlSpaceKthread = 3;

// ---- NTSTATUS values used in replies, continues and exception records ----
inline constexpr uint32_t kStatusSuccess = 0x00000000;
inline constexpr uint32_t kStatusPending = 0x00000103;
inline constexpr uint32_t kDbgExceptionHandled = 0x00010001;
inline constexpr uint32_t kDbgContinue = 0x00010002;
inline constexpr uint32_t kStatusDatatypeMisalignment = 0x80000002;
inline constexpr uint32_t kStatusBreakpoint = 0x80000003;
inline constexpr uint32_t kStatusSingleStep = 0x80000004;
inline constexpr uint32_t kStatusWakeSystemDebugger = 0x80000007;
inline constexpr uint32_t kStatusPartialCopy = 0x8000000D;
inline constexpr uint32_t kDbgExceptionNotHandled = 0x80010001;
inline constexpr uint32_t kStatusUnsuccessful = 0xC0000001;
inline constexpr uint32_t kStatusNotImplemented = 0xC0000002;
inline constexpr uint32_t kStatusAccessViolation = 0xC0000005;
inline constexpr uint32_t kStatusInvalidParameter = 0xC000000D;
inline constexpr uint32_t kStatusAccessDenied = 0xC0000022;
inline constexpr uint32_t kStatusNoSuchFile = 0xC000000F;
inline constexpr uint32_t kStatusIllegalInstruction = 0xC000001D;
inline constexpr uint32_t kStatusBufferTooSmall = 0xC0000023;
inline constexpr uint32_t kStatusIntegerDivideByZero = 0xC0000094;
inline constexpr uint32_t kStatusPrivilegedInstruction = 0xC0000096;
inline constexpr uint32_t kStatusNotSupported = 0xC00000BB;
inline constexpr uint32_t kStatusStackOverflow = 0xC00000FD;
// NT_SUCCESS(): severity bits 00 (success) or 01 (informational).
constexpr bool nt_success(uint32_t status) { return (status >> 30) < 2; }

// ---- AMD64 CONTEXT.ContextFlags ------------------------------------------
inline constexpr uint32_t kContextAmd64 = 0x00100000;
inline constexpr uint32_t kContextControl = kContextAmd64 | 0x01;
inline constexpr uint32_t kContextInteger = kContextAmd64 | 0x02;
inline constexpr uint32_t kContextSegments = kContextAmd64 | 0x04;
inline constexpr uint32_t kContextFloatingPoint = kContextAmd64 | 0x08;
inline constexpr uint32_t kContextDebugRegisters = kContextAmd64 | 0x10;
inline constexpr uint32_t kContextFull = kContextControl | kContextInteger | kContextFloatingPoint;
inline constexpr uint32_t kContextAll = kContextFull | kContextSegments | kContextDebugRegisters;

// Every structure below lists its fields once, with their wire offsets, in a
// static fields(self, f) function: f(offset, member) is called for each
// field in order. parse_struct/serialize_struct walk that list, so the two
// directions can't disagree, and a structure's kSize is its exact wire size.

struct M128A {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const M128A&) const = default;
};

// XMM_SAVE_AREA32 (FXSAVE layout), 512 bytes.
struct XmmSaveArea32 {
  static constexpr std::size_t kSize = 0x200;
  uint16_t control_word = 0, status_word = 0;
  uint8_t tag_word = 0, reserved1 = 0;
  uint16_t error_opcode = 0;
  uint32_t error_offset = 0;
  uint16_t error_selector = 0, reserved2 = 0;
  uint32_t data_offset = 0;
  uint16_t data_selector = 0, reserved3 = 0;
  uint32_t mx_csr = 0, mx_csr_mask = 0;
  std::array<M128A, 8> float_registers{};
  std::array<M128A, 16> xmm_registers{};
  std::array<uint8_t, 96> reserved4{};
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.control_word); f(0x02, s.status_word); f(0x04, s.tag_word); f(0x05, s.reserved1);
    f(0x06, s.error_opcode); f(0x08, s.error_offset); f(0x0C, s.error_selector); f(0x0E, s.reserved2);
    f(0x10, s.data_offset); f(0x14, s.data_selector); f(0x16, s.reserved3); f(0x18, s.mx_csr);
    f(0x1C, s.mx_csr_mask); f(0x20, s.float_registers); f(0xA0, s.xmm_registers); f(0x1A0, s.reserved4);
  }
  bool operator==(const XmmSaveArea32&) const = default;
};

// AMD64 CONTEXT, 0x4D0 bytes (GetContext/SetContext data, GetContextEx window).
struct Context {
  static constexpr std::size_t kSize = 0x4D0;
  static constexpr std::size_t kOffContextFlags = 0x30, kOffMxCsr = 0x34, kOffSegCs = 0x38, kOffEFlags = 0x44,
                               kOffDr0 = 0x48, kOffRax = 0x78, kOffRip = 0xF8, kOffFltSave = 0x100,
                               kOffVectorRegister = 0x300, kOffVectorControl = 0x4A0, kOffDebugControl = 0x4A8;
  uint64_t p1_home = 0, p2_home = 0, p3_home = 0, p4_home = 0, p5_home = 0, p6_home = 0;
  uint32_t context_flags = 0, mx_csr = 0;
  uint16_t seg_cs = 0, seg_ds = 0, seg_es = 0, seg_fs = 0, seg_gs = 0, seg_ss = 0;
  uint32_t eflags = 0;
  uint64_t dr0 = 0, dr1 = 0, dr2 = 0, dr3 = 0, dr6 = 0, dr7 = 0;
  uint64_t rax = 0, rcx = 0, rdx = 0, rbx = 0, rsp = 0, rbp = 0, rsi = 0, rdi = 0;
  uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  uint64_t rip = 0;
  XmmSaveArea32 flt_save{};
  std::array<M128A, 26> vector_register{};
  uint64_t vector_control = 0;
  uint64_t debug_control = 0, last_branch_to_rip = 0, last_branch_from_rip = 0;
  uint64_t last_exception_to_rip = 0, last_exception_from_rip = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.p1_home); f(0x08, s.p2_home); f(0x10, s.p3_home); f(0x18, s.p4_home); f(0x20, s.p5_home);
    f(0x28, s.p6_home); f(0x30, s.context_flags); f(0x34, s.mx_csr); f(0x38, s.seg_cs); f(0x3A, s.seg_ds);
    f(0x3C, s.seg_es); f(0x3E, s.seg_fs); f(0x40, s.seg_gs); f(0x42, s.seg_ss); f(0x44, s.eflags);
    f(0x48, s.dr0); f(0x50, s.dr1); f(0x58, s.dr2); f(0x60, s.dr3); f(0x68, s.dr6); f(0x70, s.dr7);
    f(0x78, s.rax); f(0x80, s.rcx); f(0x88, s.rdx); f(0x90, s.rbx); f(0x98, s.rsp); f(0xA0, s.rbp);
    f(0xA8, s.rsi); f(0xB0, s.rdi); f(0xB8, s.r8); f(0xC0, s.r9); f(0xC8, s.r10); f(0xD0, s.r11);
    f(0xD8, s.r12); f(0xE0, s.r13); f(0xE8, s.r14); f(0xF0, s.r15); f(0xF8, s.rip); f(0x100, s.flt_save);
    f(0x300, s.vector_register); f(0x4A0, s.vector_control); f(0x4A8, s.debug_control);
    f(0x4B0, s.last_branch_to_rip); f(0x4B8, s.last_branch_from_rip); f(0x4C0, s.last_exception_to_rip);
    f(0x4C8, s.last_exception_from_rip);
  }
  bool operator==(const Context&) const = default;
};

// KDESCRIPTOR (AMD64): Pad[3], Limit, Base.
struct KDescriptor {
  static constexpr std::size_t kSize = 0x10;
  std::array<uint16_t, 3> pad{};
  uint16_t limit = 0;
  uint64_t base = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.pad); f(0x6, s.limit); f(0x8, s.base); }
  bool operator==(const KDescriptor&) const = default;
};

// KSPECIAL_REGISTERS (AMD64) as read through control space
// AMD64_DEBUG_CONTROL_SPACE_KSPECIAL: 0xE0 bytes up to Xcr0 (Windows 10
// 10586, as in the capture). Later builds append MsrFsBase and padding
// (0xF0); parse accepts longer input and ignores the tail.
struct KSpecialRegisters {
  static constexpr std::size_t kSize = 0xE0;
  uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0;
  uint64_t kernel_dr0 = 0, kernel_dr1 = 0, kernel_dr2 = 0, kernel_dr3 = 0, kernel_dr6 = 0, kernel_dr7 = 0;
  KDescriptor gdtr{}, idtr{};
  uint16_t tr = 0, ldtr = 0;
  uint32_t mx_csr = 0;
  uint64_t debug_control = 0, last_branch_to_rip = 0, last_branch_from_rip = 0;
  uint64_t last_exception_to_rip = 0, last_exception_from_rip = 0, cr8 = 0;
  uint64_t msr_gs_base = 0, msr_gs_swap = 0, msr_star = 0, msr_lstar = 0, msr_cstar = 0, msr_syscall_mask = 0;
  uint64_t xcr0 = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.cr0); f(0x08, s.cr2); f(0x10, s.cr3); f(0x18, s.cr4); f(0x20, s.kernel_dr0);
    f(0x28, s.kernel_dr1); f(0x30, s.kernel_dr2); f(0x38, s.kernel_dr3); f(0x40, s.kernel_dr6);
    f(0x48, s.kernel_dr7); f(0x50, s.gdtr); f(0x60, s.idtr); f(0x70, s.tr); f(0x72, s.ldtr); f(0x74, s.mx_csr);
    f(0x78, s.debug_control); f(0x80, s.last_branch_to_rip); f(0x88, s.last_branch_from_rip);
    f(0x90, s.last_exception_to_rip); f(0x98, s.last_exception_from_rip); f(0xA0, s.cr8);
    f(0xA8, s.msr_gs_base); f(0xB0, s.msr_gs_swap); f(0xB8, s.msr_star); f(0xC0, s.msr_lstar);
    f(0xC8, s.msr_cstar); f(0xD0, s.msr_syscall_mask); f(0xD8, s.xcr0);
  }
  bool operator==(const KSpecialRegisters&) const = default;
};

// EXCEPTION_RECORD64, 0x98 bytes.
struct ExceptionRecord64 {
  static constexpr std::size_t kSize = 0x98;
  static constexpr std::size_t kMaxParameters = 15;
  uint32_t exception_code = 0, exception_flags = 0;
  uint64_t exception_record = 0, exception_address = 0;
  uint32_t number_parameters = 0, unused_alignment = 0;
  std::array<uint64_t, 15> exception_information{};
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.exception_code); f(0x04, s.exception_flags); f(0x08, s.exception_record);
    f(0x10, s.exception_address); f(0x18, s.number_parameters); f(0x1C, s.unused_alignment);
    f(0x20, s.exception_information);
  }
  bool operator==(const ExceptionRecord64&) const = default;
};

// DBGKM_EXCEPTION64, 0xA0 bytes.
struct Exception64 {
  static constexpr std::size_t kSize = 0xA0;
  ExceptionRecord64 record{};
  uint32_t first_chance = 0, pad = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x00, s.record); f(0x98, s.first_chance); f(0x9C, s.pad); }
  bool operator==(const Exception64&) const = default;
};

// DBGKD_LOAD_SYMBOLS64, 0x28 bytes; the path name follows the state change.
struct LoadSymbols64 {
  static constexpr std::size_t kSize = 0x28;
  uint32_t path_name_length = 0, pad0 = 0;
  uint64_t base_of_dll = 0, process_id = 0;
  uint32_t checksum = 0, size_of_image = 0;
  uint8_t unload_symbols = 0;
  std::array<uint8_t, 7> pad1{};
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.path_name_length); f(0x04, s.pad0); f(0x08, s.base_of_dll); f(0x10, s.process_id);
    f(0x18, s.checksum); f(0x1C, s.size_of_image); f(0x20, s.unload_symbols); f(0x21, s.pad1);
  }
  bool operator==(const LoadSymbols64&) const = default;
};

// AMD64_DBGKD_CONTROL_REPORT, 0x30 bytes.
struct ControlReport {
  static constexpr std::size_t kSize = 0x30;
  static constexpr std::size_t kMaxStream = 16;
  uint64_t dr6 = 0, dr7 = 0;
  uint32_t eflags = 0;
  uint16_t instruction_count = 0, report_flags = 0;
  std::array<uint8_t, 16> instruction_stream{};
  uint16_t seg_cs = 0, seg_ds = 0, seg_es = 0, seg_fs = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.dr6); f(0x08, s.dr7); f(0x10, s.eflags); f(0x14, s.instruction_count); f(0x16, s.report_flags);
    f(0x18, s.instruction_stream); f(0x28, s.seg_cs); f(0x2A, s.seg_ds); f(0x2C, s.seg_es); f(0x2E, s.seg_fs);
  }
  bool operator==(const ControlReport&) const = default;
};

// DBGKD_ANY_WAIT_STATE_CHANGE for AMD64, 0xF0 bytes. The union (exception /
// load symbols / command string) is kept as raw bytes so stale bytes survive
// a round trip; typed accessors read and write it by NewState.
struct WaitStateChange {
  static constexpr std::size_t kSize = 0xF0;
  static constexpr std::size_t kUnionOffset = 0x20, kUnionSize = 0xA0, kControlReportOffset = 0xC0;
  uint32_t new_state = 0;
  uint16_t processor_level = 0, processor = 0;
  uint32_t number_processors = 0, pad = 0;
  uint64_t thread = 0, program_counter = 0;
  std::array<uint8_t, 0xA0> u{};
  ControlReport control_report{};
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.new_state); f(0x04, s.processor_level); f(0x06, s.processor); f(0x08, s.number_processors);
    f(0x0C, s.pad); f(0x10, s.thread); f(0x18, s.program_counter); f(0x20, s.u); f(0xC0, s.control_report);
  }
  uint32_t kind() const { return new_state & ~kDbgKdAlternateStateChange; }
  Exception64 exception() const;
  LoadSymbols64 load_symbols() const;
  void set_exception(const Exception64& e);
  void set_load_symbols(const LoadSymbols64& l);
  bool operator==(const WaitStateChange&) const = default;
};

// DBGKD_DEBUG_IO header, 0x10 bytes; the string follows.
struct DebugIo {
  static constexpr std::size_t kSize = 0x10;
  uint32_t api_number = 0;
  uint16_t processor_level = 0, processor = 0;
  // PrintString.LengthOfString, or GetString.LengthOfPromptString.
  uint32_t length_of_string = 0;
  // GetString.LengthOfStringRead (unused by PrintString; stale bytes).
  uint32_t length_of_string_read = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x0, s.api_number); f(0x4, s.processor_level); f(0x6, s.processor); f(0x8, s.length_of_string);
    f(0xC, s.length_of_string_read);
  }
  bool operator==(const DebugIo&) const = default;
};

// DBGKD_GET_VERSION64, 0x28 bytes (fills the whole manipulate union).
struct GetVersion64 {
  static constexpr std::size_t kSize = 0x28;
  uint16_t major_version = 0, minor_version = 0;
  uint8_t protocol_version = 0, kd_secondary_version = 0;
  uint16_t flags = 0, machine_type = 0;
  uint8_t max_packet_type = 0, max_state_change = 0, max_manipulate = 0, simulation = 0;
  uint16_t unused = 0;
  uint64_t kern_base = 0, ps_loaded_module_list = 0, debugger_data_list = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.major_version); f(0x02, s.minor_version); f(0x04, s.protocol_version);
    f(0x05, s.kd_secondary_version); f(0x06, s.flags); f(0x08, s.machine_type); f(0x0A, s.max_packet_type);
    f(0x0B, s.max_state_change); f(0x0C, s.max_manipulate); f(0x0D, s.simulation); f(0x0E, s.unused);
    f(0x10, s.kern_base); f(0x18, s.ps_loaded_module_list); f(0x20, s.debugger_data_list);
  }
  bool operator==(const GetVersion64&) const = default;
};

// DBGKD_MANIPULATE_STATE64 header, 0x38 bytes: the fixed part and the raw
// per-API union (see manipulate.h for the typed views).
struct ManipulateState64 {
  static constexpr std::size_t kSize = 0x38;
  static constexpr std::size_t kUnionOffset = 0x10, kUnionSize = 0x28;
  uint32_t api_number = 0;
  uint16_t processor_level = 0, processor = 0;
  uint32_t return_status = 0, pad = 0;
  std::array<uint8_t, 0x28> u{};
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.api_number); f(0x04, s.processor_level); f(0x06, s.processor); f(0x08, s.return_status);
    f(0x0C, s.pad); f(0x10, s.u);
  }
  bool operator==(const ManipulateState64&) const = default;
};

// DBGKD_FILE_IO header, 0x40 bytes (target-initiated: CreateFile etc.).
struct FileIo {
  static constexpr std::size_t kSize = 0x40;
  uint32_t api_number = 0, status = 0;
  std::array<uint8_t, 56> u{};
  template <class S, class F>
  static void fields(S& s, F&& f) { f(0x0, s.api_number); f(0x4, s.status); f(0x8, s.u); }
  bool operator==(const FileIo&) const = default;
};

// DBGKD_CREATE_FILE (in FileIo::u).
struct CreateFile {
  static constexpr std::size_t kSize = 0x28;
  uint32_t desired_access = 0, file_attributes = 0, share_access = 0, create_disposition = 0;
  uint32_t create_options = 0, pad = 0;
  uint64_t handle = 0, length = 0;
  template <class S, class F>
  static void fields(S& s, F&& f) {
    f(0x00, s.desired_access); f(0x04, s.file_attributes); f(0x08, s.share_access);
    f(0x0C, s.create_disposition); f(0x10, s.create_options); f(0x14, s.pad); f(0x18, s.handle);
    f(0x20, s.length);
  }
  bool operator==(const CreateFile&) const = default;
};

// ---- Generic parse/serialize over fields() --------------------------------

namespace detail {

template <class T>
struct WireSize;
template <>
struct WireSize<uint8_t> { static constexpr std::size_t value = 1; };
template <>
struct WireSize<uint16_t> { static constexpr std::size_t value = 2; };
template <>
struct WireSize<uint32_t> { static constexpr std::size_t value = 4; };
template <>
struct WireSize<uint64_t> { static constexpr std::size_t value = 8; };
template <>
struct WireSize<M128A> { static constexpr std::size_t value = 16; };
template <class T, std::size_t N>
struct WireSize<std::array<T, N>> { static constexpr std::size_t value = N * WireSize<T>::value; };
template <class T>
  requires requires { T::kSize; }
struct WireSize<T> { static constexpr std::size_t value = T::kSize; };

struct Load {
  ByteReader& r;
  std::size_t base;
  void operator()(std::size_t off, uint8_t& v) { v = r.u8(base + off); }
  void operator()(std::size_t off, uint16_t& v) { v = r.u16(base + off); }
  void operator()(std::size_t off, uint32_t& v) { v = r.u32(base + off); }
  void operator()(std::size_t off, uint64_t& v) { v = r.u64(base + off); }
  void operator()(std::size_t off, M128A& v) {
    v.low = r.u64(base + off);
    v.high = r.u64(base + off + 8);
  }
  template <class T, std::size_t N>
  void operator()(std::size_t off, std::array<T, N>& a) {
    for (std::size_t i = 0; i < N; ++i) (*this)(off + i * WireSize<T>::value, a[i]);
  }
  // Byte arrays (reserved areas, the 512-byte FLTSAVE, the manipulate
  // union) in one copy; out of range, element by element as above so that
  // the in-range prefix and ok() come out the same.
  template <std::size_t N>
  void operator()(std::size_t off, std::array<uint8_t, N>& a) {
    if (base + off <= r.size() && N <= r.size() - (base + off)) {
      a = r.raw<N>(base + off);
      return;
    }
    for (std::size_t i = 0; i < N; ++i) (*this)(off + i, a[i]);
  }
  template <class T>
    requires requires { T::kSize; }
  void operator()(std::size_t off, T& s) {
    Load inner{r, base + off};
    T::fields(s, inner);
  }
};

struct Store {
  ByteWriter& w;
  std::size_t base;
  void operator()(std::size_t off, const uint8_t& v) { w.u8(base + off, v); }
  void operator()(std::size_t off, const uint16_t& v) { w.u16(base + off, v); }
  void operator()(std::size_t off, const uint32_t& v) { w.u32(base + off, v); }
  void operator()(std::size_t off, const uint64_t& v) { w.u64(base + off, v); }
  void operator()(std::size_t off, const M128A& v) {
    w.u64(base + off, v.low);
    w.u64(base + off + 8, v.high);
  }
  template <class T, std::size_t N>
  void operator()(std::size_t off, const std::array<T, N>& a) {
    for (std::size_t i = 0; i < N; ++i) (*this)(off + i * WireSize<T>::value, a[i]);
  }
  // Byte arrays in one copy when they fit (ByteWriter::raw); otherwise
  // byte by byte as above, which writes the part that fits.
  template <std::size_t N>
  void operator()(std::size_t off, const std::array<uint8_t, N>& a) {
    if (base + off <= w.size() && N <= w.size() - (base + off)) {
      w.raw(base + off, ByteView(a.data(), N));
      return;
    }
    for (std::size_t i = 0; i < N; ++i) (*this)(off + i, a[i]);
  }
  template <class T>
    requires requires { T::kSize; }
  void operator()(std::size_t off, const T& s) {
    Store inner{w, base + off};
    T::fields(s, inner);
  }
};

// "NAME: HAVE bytes, need NEED", the error of a structure given too few
// bytes, built in one string (a chain of + allocated at each step, and a
// short payload is the usual failure).
Error too_short(const char* name, std::size_t have, std::size_t need);

}  // namespace detail

// Parses T from the first T::kSize bytes; fails if fewer are given. Extra
// bytes are the caller's (trailing data).
template <class T>
Result<T> parse_struct(ByteView bytes, const char* name = "structure") {
  if (bytes.size() < T::kSize) return detail::too_short(name, bytes.size(), T::kSize);
  T out{};
  ByteReader r(bytes.first(T::kSize));
  detail::Load load{r, 0};
  T::fields(out, load);
  if (!r.ok()) return make_error(22, std::string(name) + ": field out of bounds");
  return out;
}

// Serializes T to exactly T::kSize bytes.
template <class T>
Bytes serialize_struct(const T& value) {
  ByteWriter w(T::kSize);
  detail::Store store{w, 0};
  T::fields(value, store);
  return std::move(w).take();
}

// Convenience wrappers with readable error names.
inline Result<Context> parse_context(ByteView b) { return parse_struct<Context>(b, "CONTEXT"); }
inline Result<KSpecialRegisters> parse_special_registers(ByteView b) {
  return parse_struct<KSpecialRegisters>(b, "KSPECIAL_REGISTERS");
}
inline Result<GetVersion64> parse_get_version(ByteView b) { return parse_struct<GetVersion64>(b, "DBGKD_GET_VERSION64"); }

// ---- Whole messages with trailing data ------------------------------------

// PACKET_TYPE_KD_STATE_CHANGE64 payload: header plus trailing data (the
// image path for load-symbols).
struct StateChangeMessage {
  WaitStateChange header;
  Bytes data;
  // The image path (PathNameLength bytes of data, clamped, without the NUL).
  std::string path() const;
};
Result<StateChangeMessage> parse_state_change(ByteView payload);
Bytes serialize_state_change(const StateChangeMessage& m);

// PACKET_TYPE_KD_DEBUG_IO payload.
struct DebugIoMessage {
  DebugIo header;
  Bytes data;
  // PrintString text: LengthOfString bytes of data, clamped to what arrived.
  std::string text() const;
};
Result<DebugIoMessage> parse_debug_io(ByteView payload);
Bytes serialize_debug_io(const DebugIoMessage& m);
// Builds a DbgKdPrintStringApi message for `text`.
DebugIoMessage make_print_string(std::string_view text, uint16_t processor = 0, uint16_t processor_level = 0);

// PACKET_TYPE_KD_FILE_IO payload.
struct FileIoMessage {
  FileIo header;
  Bytes data;
};
Result<FileIoMessage> parse_file_io(ByteView payload);
Bytes serialize_file_io(const FileIoMessage& m);

}  // namespace dbgstub::kd

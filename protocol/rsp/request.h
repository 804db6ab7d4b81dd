// Typed RSP requests. parse_request() turns an untrusted, already-unframed
// packet payload into one of these or a ParseError; it never throws, never
// crashes, and never allocates in proportion to a number found in the input.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace dbgstub::rsp {

// Thread id as written on the wire: "TID", "-1", "0", or multiprocess
// "pPID.TID" / "pPID" / "pPID.-1". pid == 0 means "not given".
// For tid and pid: -1 = all, 0 = any.
struct ThreadId {
  int64_t pid = 0;
  int64_t tid = 0;
  bool operator==(const ThreadId&) const = default;
};

// Upper bounds the parser enforces so that a hostile length can't make the
// server allocate gigabytes. The dispatcher may apply tighter ones.
inline constexpr uint64_t kMaxTransfer = 1 << 20;  // bytes in one m/M/X/x/qXfer

struct QSupported { std::vector<std::string> features; };       // "qSupported[:f1;f2...]"
struct StartNoAckMode {};                                         // QStartNoAckMode
struct QueryHaltReason {};                                        // ?
struct ReadAllRegisters { std::optional<ThreadId> thread; };      // g (lldb may add ";thread:TID;")
struct WriteAllRegisters { std::string data; std::optional<ThreadId> thread; };  // G hex
struct ReadRegister { uint64_t regno = 0; std::optional<ThreadId> thread; };     // p n
struct WriteRegister { uint64_t regno = 0; std::string value; std::optional<ThreadId> thread; };  // P n=hex
struct ReadMemory { uint64_t addr = 0; uint64_t length = 0; bool binary = false; };  // m addr,len ; x addr,len (binary reply)
struct WriteMemory { uint64_t addr = 0; std::string data; };      // M addr,len:hex ; X addr,len:bin (data decoded)
struct Breakpoint {                                               // Z/z type,addr,kind[;cond...]
  bool insert = true;
  int type = 0;        // 0 sw, 1 hw, 2 write wp, 3 read wp, 4 access wp
  uint64_t addr = 0;
  uint64_t kind = 0;   // length for watchpoints, breakpoint size otherwise
  // Target-side conditions (";X len,bytes" ...) and commands
  // (";cmds:persist,X len,bytes..."): agent expression bytecode, Z0/Z1 only.
  std::vector<std::string> conditions;
  std::vector<std::string> commands;
  bool persist = false;
};
// Legacy resume: c [addr], C sig[;addr], s [addr], S sig[;addr]
struct Resume {
  bool step = false;
  int signal = 0;
  std::optional<uint64_t> addr;
};
struct VContQuery {};                                             // vCont?
struct VCtrlC {};                                                 // vCtrlC (non-stop: interrupt)
struct VStopped {};                                               // vStopped (non-stop: next queued stop)
struct VContAction {
  char action = 'c';   // c C s S t r
  int signal = 0;      // for C/S
  uint64_t range_start = 0, range_end = 0;  // for r
  std::optional<ThreadId> thread;           // none = applies to all others
};
struct VCont { std::vector<VContAction> actions; };
struct SetThread { char op = 'g'; ThreadId thread; };             // Hg / Hc
struct ThreadAlive { ThreadId thread; };                          // T thread-id
struct QueryCurrentThread {};                                     // qC
struct ThreadInfoFirst {};                                        // qfThreadInfo
struct ThreadInfoNext {};                                         // qsThreadInfo
struct QueryAttached { std::optional<int64_t> pid; };             // qAttached[:pid]
struct XferRead {                                                 // qXfer:object:read:annex:off,len
  std::string object, annex;
  uint64_t offset = 0, length = 0;
};
struct XferWrite {                                                // qXfer:object:write:annex:off:data
  std::string object, annex;
  uint64_t offset = 0;
  std::string data;  // binary, already unescaped
};
struct MonitorCommand { std::string command; };                   // qRcmd,hex (decoded)
struct Detach { std::optional<int64_t> pid; };                    // D / D;pid
struct Kill {};                                                   // k
struct VKill { int64_t pid = 0; };                                // vKill;pid
struct VRun { std::vector<std::string> argv; };                   // vRun;hexprog[;hexarg]... (argv[0] may be "")
struct VAttach { int64_t pid = 0; };                              // vAttach;pid
struct PassSignals { std::vector<int> signals; };                 // QPassSignals:hex;hex
struct ProgramSignals { std::vector<int> signals; };              // QProgramSignals:hex;hex
struct SetFlag { std::string name; bool value = false; };         // QDisableRandomization:1, QStartupWithShell:0, QListThreadsInStopReply, QThreadSuffixSupported, QEnableErrorStrings, QNonStop:0
// QCatchSyscalls:0 (off) / QCatchSyscalls:1 (all) / QCatchSyscalls:1;hex;hex... (these)
struct CatchSyscalls { bool enabled = false; std::vector<int> syscalls; };  // enabled + empty = all
struct SetEnvironment { std::string name, value; bool unset = false; bool reset = false; };  // QEnvironmentHexEncoded / QEnvironmentUnset / QEnvironmentReset
struct SetWorkingDir { std::string dir; };                        // QSetWorkingDir:hex ("" = default)
struct QueryOffsets {};                                           // qOffsets
struct QuerySymbol { std::string raw; };                          // qSymbol:... (dbgstub looks up nothing)
struct QueryTStatus {};                                           // qTStatus
struct QueryTlsAddress { ThreadId thread; uint64_t offset = 0, lm = 0; };  // qGetTLSAddr:thread,offset,lm
// lldb's extensions
struct QueryHostInfo {};                                          // qHostInfo
struct QueryProcessInfo { std::optional<int64_t> pid; };          // qProcessInfo / qProcessInfoPID:pid
struct QueryRegisterInfo { uint64_t regno = 0; };                 // qRegisterInfo<hex>
struct QueryMemoryRegionInfo { uint64_t addr = 0; };              // qMemoryRegionInfo:addr
struct QueryThreadStopInfo { ThreadId thread; };                  // qThreadStopInfo<tid>
struct QueryWorkingDir {};                                        // qGetWorkingDir
// Host I/O ("vFile:op:args"): GDB reads the program and /proc files
// through these. Numbers are hex, names hex-encoded, decoded here.
struct HostFile {
  enum class Op { SetFs, Open, Close, Pread, Pwrite, Fstat, Readlink, Unlink };
  Op op = Op::Open;
  std::string path;        // open, readlink, unlink
  int64_t fd = -1;         // close, pread, pwrite, fstat; pid for setfs
  uint64_t flags = 0, mode = 0;     // open (GDB's fileio flag values)
  uint64_t count = 0, offset = 0;   // pread / pwrite
  std::string data;                 // pwrite (binary, already unescaped)
};
struct JsonRequest { std::string name; std::string json; };       // jThreadsInfo, jThreadExtendedInfo:..., etc.
// A packet dbgstub recognises as a known family but does not implement,
// or does not recognise at all: the reply is the empty packet.
struct Unsupported { std::string name; };

using Request = std::variant<
    QSupported, StartNoAckMode, QueryHaltReason, ReadAllRegisters, WriteAllRegisters,
    ReadRegister, WriteRegister, ReadMemory, WriteMemory, Breakpoint, Resume, VContQuery, VStopped, VCtrlC,
    VCont, SetThread, ThreadAlive, QueryCurrentThread, ThreadInfoFirst, ThreadInfoNext,
    QueryAttached, XferRead, XferWrite, MonitorCommand, Detach, Kill, VKill, VRun, VAttach, PassSignals,
    ProgramSignals, SetFlag, CatchSyscalls, SetEnvironment, SetWorkingDir, QueryOffsets, QuerySymbol,
    QueryTStatus, QueryTlsAddress, QueryHostInfo, QueryProcessInfo, QueryRegisterInfo, QueryMemoryRegionInfo,
    QueryThreadStopInfo, QueryWorkingDir, HostFile, JsonRequest, Unsupported>;

// Parse one packet payload (as delivered by Framer). A malformed packet of a
// known kind gives an Error (reply "E.." + log); an unknown one gives
// Unsupported (reply "").
Result<Request> parse_request(std::string_view payload);

// Parses a thread id ("p1.2", "-1", "1a"). Exposed for tests and replies.
std::optional<ThreadId> parse_thread_id(std::string_view s);

}  // namespace dbgstub::rsp

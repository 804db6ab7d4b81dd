// The WinDbg (KD) front end's dispatcher: turns KD data packets from the
// host into Target operations and KD replies, and the target's stops into
// state changes. Knows nothing of sockets, framing or packet ids: packets
// to send go out through the `send` hook (the session queues them, one
// unacknowledged packet at a time, as kdcom does).
//
// What the stub plays: a kernel that has stopped in its debugger. While it
// is stopped WinDbg sends manipulate requests (memory, context, control
// space, breakpoints) and every one gets exactly one reply, except Continue
// (the reply is the next state change), SwitchProcessor (a state change of
// that processor) and ClearAllInternalBreakpoints (no reply, as in NT).
// The guest is not Windows and says so in GetVersion (see kd_dispatcher.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <array>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/kd/framing.h"
#include "protocol/kd/manipulate.h"
#include "protocol/kd/structs.h"
#include "targets/target.h"

namespace dbgstub {

struct KdHooks {
  // One data packet (type, payload) for the host, in order.
  std::function<void(uint16_t, kd::Bytes)> send;
};

// The 'g' register layout of a target.xml, by register name.
class KdRegisterMap {
 public:
  struct Reg {
    int regno = 0;
    std::size_t offset = 0;  // in the 'g' bytes
    std::size_t size = 0;    // bytes
  };
  explicit KdRegisterMap(const std::string& target_xml);
  std::optional<Reg> find(std::string_view name) const;
  bool has(std::string_view name) const { return find(name).has_value(); }
  // Little-endian value of `name` from 'g' bytes (at most 8 bytes); nullopt
  // if the target has no such register or the bytes are short.
  std::optional<uint64_t> get(const std::string& g, std::string_view name) const;
  // Raw bytes of `name` (any size).
  std::optional<std::string> get_raw(const std::string& g, std::string_view name) const;
  // Sets `name` in 'g' bytes if present; false if absent.
  bool set(std::string& g, std::string_view name, uint64_t value) const;
  bool set_raw(std::string& g, std::string_view name, const std::string& bytes) const;

 private:
  // By name; looked up by string_view without a std::string made for
  // each (the CONTEXT conversions look up some forty names per request).
  std::map<std::string, Reg, std::less<>> regs_;
};

// The AMD64 CONTEXT of a thread from its 'g' bytes, and back. to_context
// fills what the target has (general registers, rip, eflags, segments,
// x87/SSE state where the description has it); from_context writes those
// same registers and leaves the rest of `g` alone.
kd::Context kd_context_from_registers(const KdRegisterMap& map, const std::string& g);
void kd_registers_from_context(const KdRegisterMap& map, const kd::Context& ctx, std::string& g);
// KSPECIAL_REGISTERS from the control registers the target has; `missing`
// gets the names of the ones it lacks.
kd::KSpecialRegisters kd_special_from_registers(const KdRegisterMap& map, const std::string& g,
                                                std::vector<std::string>* missing = nullptr);

class KdDispatcher {
 public:
  // The register layout is built from target.target_xml() unless `regs`
  // is given, which must be the map of that same document: a caller that
  // makes many dispatchers for one target (the fuzz target, one per input)
  // parses the description once.
  KdDispatcher(Target& target, KdHooks hooks, std::shared_ptr<const KdRegisterMap> regs = nullptr);

  // A new connection: greet, and report the current stop if the target is
  // stopped (WinDbg answers with RESET, which the session handles).
  void start();
  // The host sent RESET.
  void on_reset();
  // The host sent a break-in (0x62).
  void on_break_in();
  // A verified, acknowledged data packet from the host.
  void handle_packet(const kd::DataPacket& p);
  // From the target: a stop after resume or interrupt.
  void handle_stop(const StopEvent& ev);
  // A DEBUG_IO print for the user.
  void print(const std::string& text);

  bool running() const { return running_; }
  // The processor (vCPU) WinDbg is looking at.
  uint16_t current_processor() const { return current_cpu_; }

  // Builds the GetVersion reply body for this target (exposed for tests).
  kd::GetVersion64 version() const;

 private:
  void report_stop(uint32_t exception_code);
  void handle_manipulate(const kd::Bytes& payload);
  void reply(kd::Bytes payload);
  void refuse(const kd::ManipulateState64& h, const std::string& why);
  ThreadRef thread_for(uint16_t processor) const;
  Result<std::string> registers_of(ThreadRef t);
  void refresh_cpus();

  void on_read_virtual(const kd::ManipulateRequest& r, const kd::req::ReadVirtualMemory& m);
  void on_write_virtual(const kd::ManipulateRequest& r, const kd::req::WriteVirtualMemory& m);
  void on_get_context(const kd::ManipulateRequest& r, bool ex);
  void on_set_context(const kd::ManipulateRequest& r, const kd::Context& ctx, std::optional<uint32_t> ex_bytes);
  void on_set_context_ex(const kd::ManipulateRequest& r, const kd::req::SetContextEx& s);
  void on_read_control(const kd::ManipulateRequest& r, const kd::req::ReadControlSpace& c);
  void on_write_control(const kd::ManipulateRequest& r, const kd::req::WriteControlSpace& c);
  void on_write_breakpoint(const kd::ManipulateRequest& r, uint64_t address);
  void on_restore_breakpoint(const kd::ManipulateRequest& r, uint32_t handle);
  void on_breakpoint_ex(const kd::ManipulateRequest& r, bool write);
  void on_continue(const kd::ManipulateRequest& r, bool step);
  void on_switch_processor(const kd::ManipulateRequest& r);
  void on_query_memory(const kd::ManipulateRequest& r, const kd::req::QueryMemory& q);
  void on_read_msr(const kd::ManipulateRequest& r, uint32_t msr);
  // Dr0-Dr3 as WinDbg last wrote them (KSPECIAL or CONTEXT), made hardware
  // breakpoints and watchpoints by the Dr7 of Continue2.
  void apply_dr7(uint64_t dr7);

  Target& target_;
  KdHooks hooks_;
  std::shared_ptr<const KdRegisterMap> regs_;  // never null
  std::vector<ThreadRef> cpus_;   // processor number -> thread (vCPU)
  uint16_t current_cpu_ = 0;
  bool running_ = false;          // resumed; the next stop is a state change
  bool reported_ = false;         // a state change went out for the current stop
  bool noted_special_ = false;    // told the user about missing control registers
  std::map<uint32_t, uint64_t> breakpoints_;  // handle -> address
  uint32_t next_handle_ = 1;
  struct HwBreak {
    BreakpointType type;
    uint64_t addr, len;
    bool operator<(const HwBreak& o) const {
      return std::tie(type, addr, len) < std::tie(o.type, o.addr, o.len);
    }
  };
  std::array<uint64_t, 4> dr_{};   // Dr0-Dr3
  uint64_t dr7_ = 0;               // as last applied
  std::set<HwBreak> hw_;           // inserted from Dr7
};

}  // namespace dbgstub

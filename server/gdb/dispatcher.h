// Turns parsed RSP requests into target operations and replies, for one
// debugger connection. Knows nothing of sockets: replies go out through
// the `send` hook, and the session feeds packets and interrupts in.
#pragma once
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/rsp/request.h"
#include "server/gdb/host_files.h"
#include "server/policy.h"
#include "server/gdb/monitor.h"
#include "server/gdb/non_stop.h"
#include "targets/target.h"

namespace dbgstub {

struct DispatcherConfig {
  bool multi = false;
  bool allow_run = false;
  bool allow_attach = false;
  bool disable_randomization = true;
  std::vector<std::string> default_program;  // argv used by vRun with an empty name
  // Our qSupported PacketSize: the largest packet we take, and what gdb and
  // lldb size their memory reads by (lldb's binary 'x' reads up to 128 KiB).
  std::size_t packet_size = 0x20000;
  bool debug_children = false;  // -o: follow child processes from the start
  std::set<std::string> disabled_packets;  // --disable-packet (testing)
  std::vector<std::string> wrapper;        // --wrapper
  bool allow_file_write = false;           // vFile may create, write, delete
  bool redirect_stdio = false;             // the session runs over our stdin/stdout
  bool in_lab = false;                     // one of several VMs' servers in this process
  // --config (user mode): allow-lists for vRun/vAttach, vFile's root.
  SecurityPolicy policy;
  // Kernel mode: processes scheduled for termination (owned by the server:
  // it outlives the connection).
  class TerminationSchedule* terminations = nullptr;
};

struct SessionHooks {
  std::function<void(std::string)> send;       // one reply payload
  std::function<void()> start_no_ack;          // after the OK to QStartNoAckMode went out
  std::function<void()> exit_server;           // "monitor exit"
  std::function<void(const std::string&)> set_log_level;
  std::function<void(bool)> set_packet_log;
  std::function<void(std::string)> notify;     // one notification ("%Stop:...")
};

class Dispatcher {
 public:
  Dispatcher(Target& target, DispatcherConfig config, SessionHooks hooks);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void handle_packet(std::string_view payload);
  void handle_interrupt();
  // From the target: a stop after resume/interrupt/run/attach.
  void handle_stop(const StopEvent& ev);
  bool waiting_for_stop() const { return waiting_for_stop_; }
  // The client asked for extended mode ('!'): stay up with no process.
  bool extended() const { return extended_; }
  // Non-stop mode: the last exit reaches gdb as a notification it drains
  // and acts on later, so the session ends when gdb hangs up.
  bool non_stop() const { return ns_.enabled; }

 private:
  using Req = rsp::Request;
  std::string dispatch(const Req& req, bool& deferred);

  std::string on_supported(const rsp::QSupported& q);
  std::string on_halt_reason();
  std::string on_read_registers(std::optional<rsp::ThreadId> t);
  std::string on_write_registers(const rsp::WriteAllRegisters& w);
  std::string on_read_register(const rsp::ReadRegister& r);
  std::string on_write_register(const rsp::WriteRegister& w);
  std::string on_read_memory(const rsp::ReadMemory& m);
  std::string on_write_memory(const rsp::WriteMemory& m);
  std::string on_breakpoint(const rsp::Breakpoint& b);
  std::string on_resume(const std::vector<ResumeAction>& actions, bool& deferred);
  std::string on_legacy_resume(const rsp::Resume& r, bool& deferred);
  std::string on_vcont(const rsp::VCont& v, bool& deferred);
  std::string on_set_thread(const rsp::SetThread& h);
  std::string on_xfer(const rsp::XferRead& x);
  std::string on_monitor(const rsp::MonitorCommand& m);
  std::string on_detach(const rsp::Detach& d);
  std::string on_kill(std::optional<int64_t> pid, bool& deferred, bool legacy);
  std::string on_run(const rsp::VRun& r, bool& deferred);
  std::string on_attach(const rsp::VAttach& a, bool& deferred);
  std::string on_flag(const rsp::SetFlag& f);
  std::string on_host_info();
  std::string on_process_info();
  std::string on_register_info(uint64_t regno);
  std::string on_memory_region(uint64_t addr);
  std::string on_thread_stop_info(const rsp::ThreadId& t);

  // WinDbg-style process commands (process_commands.cpp).
  void add_process_commands();
  MonitorResult cmd_kill(const std::string& args);
  MonitorResult cmd_processes(const std::string& args);
  MonitorResult cmd_childdbg(const std::string& args);

  // Kernel mode: guest processes and deferred termination (kernel_commands.cpp).
  void add_kernel_commands();
  MonitorResult cmd_kill_kernel(const std::string& args);
  MonitorResult cmd_bang_process(const std::string& args);
  Result<GuestProcess> guest_current_process();
  Result<std::string> schedule_current_process();
  void run_terminations(bool halted);
  Result<std::string> guest_osdata_processes();
  void apply_child_policy();

  // Non-stop mode over the all-stop target (non_stop.cpp).
  bool ns_hold(std::string_view payload, const Req& req);
  std::string ns_vcont(const std::vector<ResumeAction>& actions);
  void ns_queued(std::set<NonStopView::Key>& threads, std::set<int>& children) const;
  void ns_handle_stop(const StopEvent& ev);
  void ns_reconcile();
  void ns_drop_gone_threads();
  void ns_enqueue(std::string reply);
  void ns_place_new_threads(const StopEvent* ev);
  std::string ns_halt_reason();
  std::string ns_vstopped();
  std::string ns_ctrl_c();
  std::string ns_stopped_reply(ThreadRef t, bool use_last);
  void ns_report_thread_stop(const StopEvent& ev);
  void ns_answer_stop_requests();
  void ns_report_requested_stop(const NonStopView::Key& k);

  // Target-side breakpoint conditions and commands (breakpoint_agent.cpp).
  struct BreakpointAgent {
    std::vector<std::string> conditions, commands;  // agent expression bytecode
    bool persist = false;
  };
  bool install_breakpoint_filter();
  void record_breakpoint_agent(int pid, const rsp::Breakpoint& b);
  bool breakpoint_stops(ThreadRef t, uint64_t addr);
  void agent_output(std::string_view text);

  std::string stop_reply(const StopEvent& ev);
  std::string threads_xml() const;
  std::string refuse(int code, const std::string& message);
  std::optional<ThreadRef> resolve(const rsp::ThreadId& t) const;
  ThreadRef current_thread() const;
  std::optional<ThreadRef> interrupt_thread(const std::vector<ResumeAction>& actions) const;
  std::optional<ThreadRef> thread_for(const std::optional<rsp::ThreadId>& named) const;
  int current_pid() const;
  int selected_pid() const;  // last chosen by Hg, Hc or |Ns: what k ends
  rsp::ThreadId wire_id(ThreadRef t) const;

  Target& target_;
  DispatcherConfig config_;
  SessionHooks hooks_;
  Monitor monitor_;
  HostFiles host_files_;
  bool host_files_refusal_logged_ = false;
  bool multiprocess_ = false;    // client and server agreed on pPID.TID ids
  bool swbreak_ = false, hwbreak_ = false;
  bool error_strings_ = false;   // client accepts "E.message"
  bool no_resumed_ = false;      // client takes "N" (no resumed thread left)
  bool list_threads_in_stop_ = false;  // lldb
  bool lldb_client_ = false;     // spoke an lldb-only packet: expects replies to k
  bool binary_upload_ = false;   // client announced binary-upload+ (GDB 16): 'x' replies are "b" + data
  bool waiting_for_stop_ = false;
  bool interrupt_pending_ = false;  // ^C while stopped: the next resume stops with SIGINT
  bool interrupt_sent_ = false;     // ^C passed to the running target, its stop not seen yet
  std::vector<ResumeAction> last_resume_;  // all-stop: what the running target was resumed with
  bool fork_events_ = false, vfork_events_ = false, exec_events_ = false;
  bool childdbg_ = false;
  int selected_pid_ = 0;
  bool extended_ = false;
  NonStopView ns_;
  // For callbacks that may outlive this connection (guest agent replies).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string xfer_cache_key_, xfer_cache_;  // the document being read in chunks
  // After 'R' gdb expects no reply but asks about the new process at once:
  // hold its packets until the relaunched program has stopped.
  bool restarting_ = false;
  std::vector<std::string> held_;
  std::optional<LaunchSpec> last_run_;  // for 'R' (restart)
  bool disabled(const char* packet) const { return config_.disabled_packets.count(packet) > 0; }
  ThreadRef g_thread_{}, c_thread_{};
  std::map<std::pair<int, uint64_t>, BreakpointAgent> bp_agent_;  // (pid, addr), Z0/Z1 with conditions or commands
  bool c_thread_all_ = true;
  std::set<int> pass_signals_;   // host numbers
  std::vector<std::string> environment_;
  std::string working_dir_;
  bool disable_randomization_;
};

}  // namespace dbgstub

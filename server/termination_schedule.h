// Kernel mode's ".kill Process" (WinDbg): nothing is ended while the
// machine is halted. The process is recorded, and ended from inside the
// guest the next time the machine runs (continue, step, detach, or the
// debugger leaving, which resumes it). It belongs to the target, not to one
// debugger connection: what a debugger scheduled still happens after it
// has gone.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "targets/target.h"

namespace dbgstub {

class TerminationSchedule {
 public:
  // Told the processes still to be ended (pending, and started but not yet
  // answered) after every change: a state file keeps them across a crash
  // (server/lab/vm_state.h).
  using Observer = std::function<void(const std::vector<GuestProcess>&)>;
  void set_observer(Observer o) { observer_ = std::move(o); }

  // Records `p`. The text says exactly what will happen (or, for a kernel
  // thread or an idle task, why it can't).
  Result<std::string> schedule(const GuestProcess& p);
  // "Pending terminations: ..." (empty when none).
  std::string pending_text() const;
  bool empty() const { return pending_.empty(); }
  // Terminations started and not yet answered by the guest.
  bool busy() const { return in_flight_ > 0; }
  // Waiting for the machine's next run (not yet started).
  const std::vector<GuestProcess>& pending() const { return pending_; }
  // The machine runs again: each pending process is ended inside the
  // guest. `report` gets one line per outcome, when it is known;
  // `outcome` (the control socket's kill) the outcome itself.
  using Outcome = std::function<void(const GuestProcess&, const Status&, const std::string& line)>;
  void run(GuestProcesses& guest, std::function<void(const std::string&)> report, Outcome outcome = nullptr);
  // Outcomes reported since the last call (for a debugger that was not
  // listening when they came).
  std::vector<std::string> take_outcomes();

 private:
  void notify() const;

  std::vector<GuestProcess> pending_;
  std::vector<GuestProcess> in_flight_list_;
  std::vector<std::string> outcomes_;
  int in_flight_ = 0;
  Observer observer_;
};

// "Process ffff8880041b8000 (sleep, pid 85)"
std::string describe_guest_process(const GuestProcess& p);

}  // namespace dbgstub

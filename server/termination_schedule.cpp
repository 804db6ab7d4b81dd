#include "server/termination_schedule.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <memory>

namespace dbgstub {

std::string describe_guest_process(const GuestProcess& p) {
  char addr[32];
  std::snprintf(addr, sizeof addr, "%016llx", static_cast<unsigned long long>(p.address));
  return std::string("Process ") + addr + " (" + p.name + ", pid " + std::to_string(p.pid) + ")";
}

Result<std::string> TerminationSchedule::schedule(const GuestProcess& p) {
  const std::string how_to_pick =
      " Pick a user process from \"monitor !process 0 0\" and use \"monitor .kill ADDRESS\".";
  if (p.idle)
    return make_error(1, describe_guest_process(p) + " is a CPU's idle task: it cannot be terminated." + how_to_pick);
  if (p.kernel_thread)
    return make_error(1, describe_guest_process(p) + " is a kernel thread: it has no user space to terminate." +
                             how_to_pick);
  for (auto& q : pending_)
    if (q.address == p.address)
      return describe_guest_process(p) + " is already scheduled for termination.\n" + pending_text();
  pending_.push_back(p);
  notify();
  spdlog::info("{} scheduled for termination", describe_guest_process(p));
  std::string text = describe_guest_process(p) + " will be terminated the next time the target runs.\n";
  if (pending_.size() > 1) text += pending_text();
  return text;
}

std::string TerminationSchedule::pending_text() const {
  if (pending_.empty()) return "";
  std::string t = "Pending terminations:\n";
  for (auto& p : pending_) t += "  " + describe_guest_process(p) + "\n";
  return t;
}

void TerminationSchedule::run(GuestProcesses& guest, std::function<void(const std::string&)> report, Outcome outcome) {
  std::vector<GuestProcess> now;
  now.swap(pending_);
  in_flight_list_.insert(in_flight_list_.end(), now.begin(), now.end());
  for (auto& p : now) {
    spdlog::info("terminating {} in the guest", describe_guest_process(p));
    ++in_flight_;
    guest.terminate(p, [this, p, report, outcome](Status st) {
      --in_flight_;
      for (auto it = in_flight_list_.begin(); it != in_flight_list_.end(); ++it)
        if (it->address == p.address && it->pid == p.pid) {
          in_flight_list_.erase(it);
          break;
        }
      notify();
      std::string line;
      if (st) line = describe_guest_process(p) + " was terminated.\n";
      else if (st.error().code == ESRCH) line = describe_guest_process(p) + " was not terminated: " + st.error().message + ".\n";
      else line = describe_guest_process(p) + " could not be terminated: " + st.error().message + "\n";
      spdlog::info("{}", line.substr(0, line.size() - 1));
      outcomes_.push_back(line);
      if (report) report(line);
      if (outcome) outcome(p, st, line);
    }, report);
  }
}

void TerminationSchedule::notify() const {
  if (!observer_) return;
  std::vector<GuestProcess> all = in_flight_list_;
  all.insert(all.end(), pending_.begin(), pending_.end());
  observer_(all);
}

std::vector<std::string> TerminationSchedule::take_outcomes() {
  std::vector<std::string> out;
  out.swap(outcomes_);
  return out;
}

}  // namespace dbgstub

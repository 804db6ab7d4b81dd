// Small readers of /proc/PID/task/TID/{stat,status} for the process target.
#include "targets/process/procfs.h"

#include <signal.h>

#include <cstdlib>
#include <cstring>

namespace dbgstub::procfs {

char task_state(pid_t pid, pid_t tid) {
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char buf[512];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  return close && close[1] == ' ' ? close[2] : 0;
}

bool thread_dying(pid_t pid, pid_t tid) {
  bool dying = false;
  auto field = [&](std::string_view key, const char* value) {
    if (key == "State") {
      while (*value == ' ' || *value == '\t') ++value;
      if (*value == 'Z' || *value == 'X') dying = true;
    }
    if (key == "SigPnd" || key == "ShdPnd") {
      uint64_t pending = std::strtoull(value, nullptr, 16);
      if (pending & (uint64_t{1} << (SIGKILL - 1))) dying = true;
    }
  };
  std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status";
  return !each_status_field(path, field) || dying;
}

pid_t thread_group_of(pid_t tid) {
  pid_t tgid = 0;
  each_status_field("/proc/" + std::to_string(tid) + "/status", [&](std::string_view key, const char* value) {
    if (key == "Tgid") tgid = static_cast<pid_t>(std::atoi(value));
  });
  return tgid;
}

}  // namespace dbgstub::procfs

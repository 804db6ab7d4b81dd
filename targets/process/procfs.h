// Small readers of /proc/PID/task/TID/{stat,status} for the process target
// (the larger /proc documents are in process_documents.h).
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace dbgstub::procfs {

// The state letter of /proc/PID/task/TID/stat ('R', 'S', 'Z', ...), 0 if gone.
char task_state(pid_t pid, pid_t tid);

// Calls fn(key, value) for each "Key:\tvalue" line of a /proc status file
// (value starts after the colon); false if the file can't be opened.
template <class Fn>
bool each_status_field(const std::string& path, Fn fn) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  char line[256];
  while (std::fgets(line, sizeof line, f))
    if (const char* colon = std::strchr(line, ':')) fn(std::string_view(line, colon - line), colon + 1);
  std::fclose(f);
  return true;
}

// Thread `tid` of `pid` is dying or dead: ended, or SIGKILL pending (a
// group exit kills every thread with it, stopped ones too).
bool thread_dying(pid_t pid, pid_t tid);

// The process (thread group) `tid` belongs to, from /proc/TID/status; 0 if
// it can't be read. /proc/TID exists for every thread, listed or not.
pid_t thread_group_of(pid_t tid);

}  // namespace dbgstub::procfs

#include "server/policy.h"

#include <limits.h>
#include <stdlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dbgstub {
namespace {

bool beneath(const std::string& path, const std::string& dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

}  // namespace

Result<int> open_allowed_program(const RunAllowList& allow, const std::string& program) {
  if (program.empty() || program[0] != '/')
    return make_error(1, "starting '" + program + "' is not allowed: the configuration's allow.run takes absolute "
                         "paths only");
  int fd = ::open(program.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return make_error(2, "starting '" + program + "' is not allowed: " + std::strerror(errno));
  // What the descriptor names, symlinks and ".." resolved.
  char buf[PATH_MAX];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  std::string real = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  struct stat st{};
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (regular && !real.empty()) {
    for (auto& f : allow.files)
      if (real == f) return fd;
    for (auto& d : allow.dirs)
      if (beneath(real, d)) return fd;
  }
  ::close(fd);
  return make_error(1, "starting '" + program + "'" + (real != program && !real.empty() ? " (" + real + ")" : "") +
                           " is not allowed: " + (regular ? "not in the configuration's allow.run" : "not a file"));
}

Status check_run(const RunAllowList& allow, const std::string& program) {
  auto fd = open_allowed_program(allow, program);
  if (!fd) return fd.error();
  ::close(*fd);
  return ok_status();
}

Result<std::vector<uid_t>> process_uids(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  if (!f) return make_error(3, "no process " + std::to_string(pid));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream in(line.substr(4));
    std::vector<uid_t> uids;
    unsigned long v;
    while (uids.size() < 3 && in >> v) uids.push_back(static_cast<uid_t>(v));
    if (uids.size() == 3) return uids;
    break;
  }
  return make_error(3, "cannot read the owner of process " + std::to_string(pid));
}

Status check_attach(const AttachAllowList& allow, int pid) {
  if (allow.pids.count(pid)) return ok_status();
  auto uids = process_uids(pid);
  if (!uids) return make_error(1, "attaching to process " + std::to_string(pid) + " is not allowed: " +
                                      uids.error().message);
  for (uid_t u : *uids)
    if (!allow.uids.count(u))
      return make_error(1, "attaching to process " + std::to_string(pid) + " is not allowed: its owner (uid " +
                               std::to_string(u) + ") is not in the configuration's allow.attach");
  return ok_status();
}

}  // namespace dbgstub

#include "server/policy.h"

#include <limits.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>

namespace dbgstub {
namespace {

std::string resolve(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return {};
  return buf;
}

bool beneath(const std::string& path, const std::string& dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

}  // namespace

Status check_run(const RunAllowList& allow, const std::string& program) {
  if (program.empty() || program[0] != '/')
    return make_error(1, "starting '" + program + "' is not allowed: the configuration's allow.run takes absolute "
                         "paths only");
  std::string real = resolve(program);
  if (real.empty()) return make_error(2, "starting '" + program + "' is not allowed: it does not resolve to a file");
  for (auto& f : allow.files)
    if (real == f) return ok_status();
  for (auto& d : allow.dirs)
    if (beneath(real, d)) return ok_status();
  return make_error(1, "starting '" + program + "'" + (real != program ? " (" + real + ")" : std::string()) +
                           " is not allowed: not in the configuration's allow.run");
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

#include "server/policy.h"

#include <limits.h>
#include <stdlib.h>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
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

Result<TaskCredentials> task_credentials(const std::string& status_path) {
  std::ifstream f(status_path);
  if (!f) return make_error(3, "cannot read " + status_path);
  TaskCredentials c;
  int seen = 0;
  std::string line;
  auto ids = [](const std::string& rest) {
    std::istringstream in(rest);
    std::vector<unsigned> v;
    unsigned long x;
    while (in >> x) v.push_back(static_cast<unsigned>(x));
    return v;
  };
  auto caps = [](const std::string& rest) { return std::strtoull(rest.c_str(), nullptr, 16); };
  while (std::getline(f, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), rest = line.substr(colon + 1);
    if (key == "Tgid") c.tgid = std::atoi(rest.c_str()), seen |= 1;
    else if (key == "Uid") c.uids = ids(rest), seen |= 2;
    else if (key == "Gid") c.gids = ids(rest), seen |= 4;
    else if (key == "Groups") for (unsigned g : ids(rest)) c.gids.push_back(g);
    else if (key == "CapPrm" || key == "CapEff" || key == "CapAmb") c.capabilities |= caps(rest);
  }
  if (seen != 7 || c.uids.size() < 3 || c.gids.empty()) return make_error(3, "cannot read the credentials in " + status_path);
  return c;
}

Result<std::vector<uid_t>> process_uids(int pid) {
  auto c = task_credentials("/proc/" + std::to_string(pid) + "/status");
  if (!c) return make_error(3, "cannot read the owner of process " + std::to_string(pid));
  return std::vector<uid_t>(c->uids.begin(), c->uids.begin() + 3);
}

namespace {

// The groups a user's own processes may hold: its primary group and those
// it is a member of. Nothing for a uid with no account.
std::optional<std::set<gid_t>> user_groups(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{}, *found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found) return std::nullopt;
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  while (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
    if (static_cast<std::size_t>(n) <= groups.size()) return std::set<gid_t>{pw.pw_gid};  // can't list them
    groups.resize(static_cast<std::size_t>(n));
  }
  groups.resize(static_cast<std::size_t>(std::max(n, 0)));
  return std::set<gid_t>(groups.begin(), groups.end());
}

}  // namespace

Status check_attach(const AttachAllowList& allow, int pid) {
  std::string what = "attaching to process " + std::to_string(pid) + " is not allowed: ";
  if (allow.pids.count(pid)) return ok_status();
  // Credentials are per thread, and ptrace gets the whole process: every
  // thread must be what an allowed user's own process could be. Its uids
  // allowed; no group the user is not in (a set-gid program); no
  // capability unless the user is root (a program with file capabilities).
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  std::vector<std::string> tasks;
  if (DIR* d = ::opendir(task_dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') tasks.push_back(task_dir + "/" + e->d_name + "/status");
    ::closedir(d);
  }
  std::map<uid_t, std::optional<std::set<gid_t>>> groups_of;  // looked up once per owner
  std::size_t read = 0;
  for (const auto& status : tasks) {
    auto c = task_credentials(status);
    if (!c) continue;  // a thread that has just ended
    ++read;
    if (c->tgid != pid)
      return make_error(1, what + "it is a thread of process " + std::to_string(c->tgid) +
                               " (attach to the process by its own id)");
    for (uid_t u : c->uids)
      if (!allow.uids.count(u))
        return make_error(1, what + "its owner (uid " + std::to_string(u) +
                                 ") is not in the configuration's allow.attach");
    uid_t owner = c->uids[0];
    if (owner == 0) continue;
    auto it = groups_of.find(owner);
    if (it == groups_of.end()) it = groups_of.emplace(owner, user_groups(owner)).first;
    // A uid with no account: only the process's own real group, no others.
    auto member = [&](gid_t g) { return it->second ? it->second->count(g) > 0 : g == c->gids[0]; };
    for (gid_t g : c->gids)
      if (!member(g))
        return make_error(1, what + "it holds group " + std::to_string(g) + ", which its owner (uid " +
                                 std::to_string(owner) + ") is not a member of");
    if (c->capabilities != 0)
      return make_error(1, what + "it holds capabilities its owner (uid " + std::to_string(owner) +
                               ") does not have");
  }
  // Fail closed: a process that ended meanwhile, or one whose threads can't be read.
  if (read == 0) return make_error(1, what + "no process " + std::to_string(pid));
  return ok_status();
}

}  // namespace dbgstub

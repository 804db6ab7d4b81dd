// The user-mode policy of --config (issue #7): parsing, and the checks for
// vRun's program and vAttach's process.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "server/lab/lab_config.h"
#include "server/app/options.h"
#include "server/policy.h"

using namespace dbgstub;

namespace {
std::string error_of(const std::string& text) {
  auto r = parse_config(text);
  return r ? std::string("(no error)") : r.error().message;
}
}  // namespace

TEST_CASE("policy config: allow-lists and the files root, resolved") {
  auto cfg = parse_config(R"({"allow": {"run": ["/bin/true", "/usr/lib/"],
                                        "attach": {"users": ["root", 12345, "4242"], "pids": [77]}},
                              "files": {"root": "/tmp/../usr", "write": true}})");
  REQUIRE(cfg);
  CHECK(cfg->vms.empty());
  REQUIRE(cfg->policy.run);
  // /bin is a symlink to usr/bin on Debian 12: what is kept is resolved.
  char real[4096];
  REQUIRE(realpath("/bin/true", real));
  CHECK(cfg->policy.run->files == std::vector<std::string>{real});
  CHECK(cfg->policy.run->dirs == std::vector<std::string>{"/usr/lib"});
  REQUIRE(cfg->policy.attach);
  CHECK(cfg->policy.attach->uids == std::set<uid_t>{0, 12345, 4242});
  CHECK(cfg->policy.attach->pids == std::set<int>{77});
  CHECK(cfg->policy.files_root == "/usr");
  CHECK(cfg->policy.files_write);

  auto only_files = parse_config(R"({"files": {"root": "/"}})");
  REQUIRE(only_files);
  CHECK_FALSE(only_files->policy.run);
  CHECK_FALSE(only_files->policy.attach);
  CHECK_FALSE(only_files->policy.files_write);
}

TEST_CASE("policy config: errors name the field") {
  CHECK(error_of(R"({"allow": 1})").find("allow: must be an object") == 0);
  CHECK(error_of(R"({"allow": {"runn": []}})") == "allow.runn: unknown field (known: attach, run)");
  CHECK(error_of(R"({"allow": {"run": []}})") == "allow.run: must be a non-empty array of absolute paths");
  CHECK(error_of(R"({"allow": {"run": ["/bin/true", "true"]}})") == "allow.run[1]: 'true' must be an absolute path");
  CHECK(error_of(R"({"allow": {"run": [3]}})") == "allow.run[0]: must be a string");
  CHECK(error_of(R"({"allow": {"run": ["/nonexistent/prog"]}})") ==
        "allow.run[0]: '/nonexistent/prog': No such file or directory");
  CHECK(error_of(R"({"allow": {"attach": []}})").find("allow.attach: must be an object") == 0);
  CHECK(error_of(R"({"allow": {"attach": {}}})") == "allow.attach: needs \"users\" or \"pids\"");
  CHECK(error_of(R"({"allow": {"attach": {"users": ["no-such-user-here"]}}})") ==
        "allow.attach.users[0]: no such user 'no-such-user-here'");
  CHECK(error_of(R"({"allow": {"attach": {"users": [-1]}}})") == "allow.attach.users[0]: bad uid");
  CHECK(error_of(R"({"allow": {"attach": {"users": [true]}}})") == "allow.attach.users[0]: must be a user name or a uid");
  CHECK(error_of(R"({"allow": {"attach": {"pids": [0]}}})") == "allow.attach.pids[0]: must be a positive integer");
  CHECK(error_of(R"({"allow": {"attach": {"pids": ["1"]}}})") == "allow.attach.pids[0]: must be a positive integer");
  CHECK(error_of(R"({"allow": {"attach": {"uids": [1]}}})") == "allow.attach.uids: unknown field (known: pids, users)");
  CHECK(error_of(R"({"files": {"root": "/etc/hostname"}})") == "files.root: '/etc/hostname' is not a directory");
  CHECK(error_of(R"({"files": {"root": "relative"}})") == "files.root: 'relative' must be an absolute path");
  CHECK(error_of(R"({"files": {"write": "yes"}})") == "files.write: must be true or false");
  CHECK(error_of(R"({"files": {"roots": "/"}})") == "files.roots: unknown field (known: root, write)");
  CHECK(error_of(R"({"policy": {}})") == "policy: unknown field (known: allow, clients, control, control_group, files, libvirt, state_dir, vms)");
  CHECK(error_of(R"({"vms": [{"name": "a", "listen": ":1", "gdbstub": ":2"}], "files": {"root": "/"}})") ==
        "files: applies to a user-mode session, not to a lab of VMs (\"vms\")");
}

TEST_CASE("policy: vRun's program, exact files and directories, after resolving") {
  char tmpl[] = "/tmp/dbgstub-policy-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string bin = dir + "/bin", other = dir + "/other";
  mkdir(bin.c_str(), 0700);
  mkdir(other.c_str(), 0700);
  std::ofstream(bin + "/prog") << "x";
  std::ofstream(other + "/prog") << "x";
  REQUIRE(symlink((other + "/prog").c_str(), (bin + "/sneaky").c_str()) == 0);
  REQUIRE(symlink((bin + "/prog").c_str(), (other + "/alias").c_str()) == 0);
  RunAllowList allow;
  allow.dirs = {bin};
  allow.files = {other + "/exact"};
  std::ofstream(other + "/exact") << "x";

  CHECK(check_run(allow, bin + "/prog"));
  CHECK(check_run(allow, other + "/alias"));               // resolves into bin/
  CHECK(check_run(allow, other + "/../bin/prog"));
  CHECK(check_run(allow, other + "/exact"));
  auto no = check_run(allow, other + "/prog");
  REQUIRE_FALSE(no);
  CHECK(no.error().message.find("not in the configuration's allow.run") != std::string::npos);
  CHECK_FALSE(check_run(allow, bin + "/sneaky"));          // a link out of bin/ to other/prog
  CHECK_FALSE(check_run(allow, bin + "/../other/prog"));
  CHECK_FALSE(check_run(allow, bin));                      // the directory itself is no program
  CHECK_FALSE(check_run(allow, bin + "x/prog"));
  CHECK_FALSE(check_run(allow, "prog"));                   // relative: refused
  CHECK_FALSE(check_run(allow, bin + "/missing"));
  auto not_file = check_run(allow, bin + "/");
  REQUIRE_FALSE(not_file);
  CHECK(not_file.error().message.find("not a file") != std::string::npos);

  // What is checked is what runs: the descriptor keeps naming the file it
  // was checked as, whatever the path names afterwards.
  std::string link = other + "/swap";
  REQUIRE(symlink((bin + "/prog").c_str(), link.c_str()) == 0);
  auto fd = open_allowed_program(allow, link);
  REQUIRE(fd);
  REQUIRE(unlink(link.c_str()) == 0);
  REQUIRE(symlink((other + "/prog").c_str(), link.c_str()) == 0);
  CHECK_FALSE(check_run(allow, link));
  char buf[4096] = {};
  REQUIRE(readlink(("/proc/self/fd/" + std::to_string(*fd)).c_str(), buf, sizeof buf - 1) > 0);
  CHECK(std::string(buf) == bin + "/prog");
  CHECK((fcntl(*fd, F_GETFD) & FD_CLOEXEC) != 0);
  close(*fd);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("policy: vAttach by the process's owner or its pid") {
  AttachAllowList mine;
  mine.uids = {getuid()};
  CHECK(check_attach(mine, getpid()));
  auto uids = process_uids(getpid());
  REQUIRE(uids);
  CHECK(uids->size() == 3);

  AttachAllowList others;
  others.uids = {getuid() + 1};
  auto no = check_attach(others, getpid());
  REQUIRE_FALSE(no);
  CHECK(no.error().message.find("is not in the configuration's allow.attach") != std::string::npos);
  others.pids = {getpid()};
  CHECK(check_attach(others, getpid()));
  others.pids = {};
  CHECK_FALSE(check_attach(mine, 0x7ffffff0));  // no such process
}

TEST_CASE("policy: vAttach by owner refuses a thread's id, and processes with more than their owner has") {
  AttachAllowList mine;
  mine.uids = {getuid()};
  // A thread of an allowed process is not a process: ptrace would seize
  // the whole process, whose other threads may have other credentials.
  std::atomic<int> tid{0};
  std::atomic<bool> done{false};
  std::thread t([&] {
    tid = static_cast<int>(::syscall(SYS_gettid));
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  while (!tid) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto no = check_attach(mine, tid);
  done = true;
  t.join();
  REQUIRE_FALSE(no);
  CHECK(no.error().message.find("it is a thread of process " + std::to_string(getpid())) != std::string::npos);

  if (geteuid() != 0) return;  // the rest changes credentials
  // Children that became nobody (65534) in three ways.
  auto child = [](auto fn) {
    pid_t pid = fork();
    if (pid == 0) {
      fn();
      for (;;) pause();
    }
    return pid;
  };
  auto become = [](uid_t uid, bool change_group, bool keep_caps) {
    if (keep_caps && prctl(PR_SET_KEEPCAPS, 1) != 0) _exit(1);
    if (setgroups(0, nullptr) != 0) _exit(1);
    if (change_group && setresgid(uid, uid, uid) != 0) _exit(1);
    if (setresuid(uid, uid, uid) != 0) _exit(1);
  };
  pid_t plain = child([&] { become(65534, true, false); });  // nobody's own group: as nobody's own process
  pid_t group = child([&] { become(65534, false, false); });  // kept root's group 0
  pid_t caps = child([&] { become(65534, true, true); });     // kept its capabilities (permitted)
  // A uid with no account (as in containers): its own group only.
  pid_t bare = child([&] { become(54321, true, false); });
  pid_t bare_group = child([] {  // as a set-gid program: real group its own, effective root's
    if (setgroups(0, nullptr) != 0 || setresgid(54321, 0, 0) != 0 || setresuid(54321, 54321, 54321) != 0) _exit(1);
  });
  auto became = [](pid_t p, uid_t uid) {
    for (int i = 0; i < 200; ++i) {
      auto u = process_uids(p);
      if (u && (*u)[0] == uid) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  };
  AttachAllowList nobody;
  nobody.uids = {65534};
  REQUIRE(became(plain, 65534));
  REQUIRE(became(group, 65534));
  REQUIRE(became(caps, 65534));
  REQUIRE(became(bare, 54321));
  REQUIRE(became(bare_group, 54321));
  AttachAllowList accountless;
  accountless.uids = {54321};
  CHECK(check_attach(accountless, bare));
  CHECK_FALSE(check_attach(accountless, bare_group));
  CHECK(check_attach(nobody, plain));
  auto g = check_attach(nobody, group);
  CHECK_FALSE(g);
  if (!g) CHECK(g.error().message.find("it holds group 0") != std::string::npos);
  auto c = check_attach(nobody, caps);
  CHECK_FALSE(c);
  if (!c) CHECK(c.error().message.find("capabilities") != std::string::npos);
  for (pid_t p : {plain, group, caps, bare, bare_group}) {
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
  }
}

TEST_CASE("--config with [HOST]:PORT is a user-mode session's policy; without, a lab") {
  auto lab = parse_options({"--config", "lab.json"});
  REQUIRE(lab);
  CHECK(lab->lab);
  auto user = parse_options({"--config", "policy.json", "--multi", "127.0.0.1:0"});
  REQUIRE(user);
  CHECK_FALSE(user->lab);
  CHECK(user->multi);
  CHECK(user->config == "policy.json");
  auto prog = parse_options({"--config=policy.json", ":0", "/bin/true"});
  REQUIRE(prog);
  CHECK_FALSE(prog->lab);
  CHECK_FALSE(parse_options({"--config", "p.json", "--local-kernel", ":0"}));
  CHECK_FALSE(parse_options({"--config", "p.json", "--kd", ":0", "--local-kernel"}));
}

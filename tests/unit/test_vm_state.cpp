// The per-VM state file (server/lab/vm_state.h): what a restarted dbgstub
// trusts, and what it sets aside. Real files in a temporary folder.
#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "server/lab/vm_state.h"

using namespace dbgstub;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/dbgstub-vm-state-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (auto* e = ::readdir(d))
        if (e->d_name[0] != '.') out.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const VmIdentity kVm1{"vm1", "127.0.0.1:1234"};

VmState sample() {
  VmState s;
  s.held = true;
  s.breakpoints = {{0, 0xffffffff81234567ULL, 1}, {1, 0xfff0, 1}};
  s.terminations = {{0xffff888006449840ULL, 99, "sleep", std::nullopt}, {0xffff88800644e100ULL, 100, "a b\"c", 123456789}};
  return s;
}

}  // namespace

TEST_CASE("vm state: round trip through text and through the file") {
  auto text = serialize_vm_state(sample(), kVm1);
  auto back = parse_vm_state(text, kVm1);
  REQUIRE(back);
  CHECK(*back == sample());

  TempDir dir;
  VmStateFile f(dir.path, kVm1);
  CHECK(f.path() == dir.path + "/vm1.json");
  CHECK(f.load() == VmState{});  // no file yet: nothing to recover
  f.set_hold(true, sample().breakpoints);
  f.set_terminations(sample().terminations);
  VmStateFile again(dir.path, kVm1);
  CHECK(again.load() == sample());
  CHECK(again.load().needs_recovery());
  // No temporary file is left behind.
  CHECK(dir.files() == std::vector<std::string>{"vm1.json"});
  f.set_hold(false, {});
  CHECK(dir.files() == std::vector<std::string>{"vm1.json"});  // terminations still pending
  f.set_terminations({});
  CHECK_FALSE(VmStateFile(dir.path, kVm1).load().needs_recovery());
  // Nothing to undo: no file at all.
  CHECK(dir.files().empty());
}

TEST_CASE("vm state: atomic replace leaves the old or the new file, never a mix") {
  TempDir dir;
  std::string path = dir.path + "/x.json";
  REQUIRE(write_file_atomically(path, "old\n"));
  struct stat before {};
  REQUIRE(::stat(path.c_str(), &before) == 0);
  REQUIRE(write_file_atomically(path, "new\n"));
  struct stat after {};
  REQUIRE(::stat(path.c_str(), &after) == 0);
  CHECK(read(path) == "new\n");
  // A new file renamed over the old (another inode), not the old rewritten.
  CHECK(before.st_ino != after.st_ino);
  CHECK((after.st_mode & 0777) == 0600);
  CHECK(dir.files() == std::vector<std::string>{"x.json"});
  // A folder that does not exist yet is made.
  REQUIRE(write_file_atomically(dir.path + "/a/b/y.json", "z"));
  CHECK(read(dir.path + "/a/b/y.json") == "z");
  // One that can't be (a file in the way) is an error, not a crash.
  CHECK_FALSE(write_file_atomically(path + "/z.json", "z"));
}

TEST_CASE("vm state: damaged files are refused with a reason") {
  auto reason = [](const std::string& text) {
    auto r = parse_vm_state(text, kVm1);
    return r ? std::string("(trusted)") : r.error().message;
  };
  CHECK(reason("") == "damaged: not JSON");
  CHECK(reason("{\"version\": 1, \"na") == "damaged: not JSON");
  CHECK(reason("[1,2]") == "damaged: not a JSON object");
  CHECK(reason(R"({"version": 2, "name": "vm1", "gdbstub": "127.0.0.1:1234"})") == "damaged: not version 1");
  CHECK(reason(R"({"version": 1, "name": "vm1", "gdbstub": "127.0.0.1:1234", "held": "yes",
                   "breakpoints": [], "terminations": []})") == "damaged: held is not true/false");
  CHECK(reason(R"({"version": 1, "name": "vm1", "gdbstub": "127.0.0.1:1234", "held": true,
                   "breakpoints": [{"type": 9, "address": "0x1", "kind": 1}], "terminations": []})")
            .starts_with("damaged: breakpoint"));
  CHECK(reason(R"({"version": 1, "name": "vm1", "gdbstub": "127.0.0.1:1234", "held": true,
                   "breakpoints": [], "terminations": [{"address": 5, "pid": 3, "name": "x"}]})")
            .starts_with("damaged: termination"));
  CHECK(reason(R"({"version": 1, "name": "vm1", "gdbstub": "127.0.0.1:1234", "held": true,
                   "breakpoints": [], "terminations": [{"address": "0xzz", "pid": 3, "name": "x"}]})")
            .starts_with("damaged: termination"));
  // Truncated mid-write (what a non-atomic writer would leave).
  auto text = serialize_vm_state(sample(), kVm1);
  CHECK(reason(text.substr(0, text.size() / 2)) == "damaged: not JSON");
}

TEST_CASE("vm state: another VM's file is foreign") {
  auto text = serialize_vm_state(sample(), kVm1);
  auto other_name = parse_vm_state(text, {"vm2", "127.0.0.1:1234"});
  REQUIRE_FALSE(other_name);
  CHECK(other_name.error().message == "foreign: it is the state of VM 'vm1'");
  auto other_stub = parse_vm_state(text, {"vm1", "127.0.0.1:9999"});
  REQUIRE_FALSE(other_stub);
  CHECK(other_stub.error().message == "foreign: it is the state of the VM whose gdbstub is at 127.0.0.1:1234");
}

TEST_CASE("vm state: a damaged or foreign file is set aside, never trusted") {
  TempDir dir;
  VmStateFile f(dir.path, kVm1);
  write(f.path(), "garbage{");
  CHECK(f.load() == VmState{});
  auto files = dir.files();
  REQUIRE(files.size() == 1);
  CHECK(files[0].starts_with("vm1.json.damaged-"));
  CHECK(read(dir.path + "/" + files[0]) == "garbage{");  // kept for whoever looks into it
  // A foreign one likewise; the next save writes a good file in its place.
  write(f.path(), serialize_vm_state(sample(), {"vm1", "10.0.0.1:1"}));
  CHECK(f.load() == VmState{});
  CHECK(dir.files().size() == 2);
  f.set_hold(true, {});
  CHECK(VmStateFile(dir.path, kVm1).load().held);
}

TEST_CASE("vm state: file names stay in the folder") {
  CHECK(vm_state_file_name("vm1") == "vm1.json");
  CHECK(vm_state_file_name("../etc/passwd") == "_.._etc_passwd.json");
  CHECK(vm_state_file_name("") == "_.json");
  CHECK(vm_state_file_name("gdbstub-127.0.0.1-1234") == "gdbstub-127.0.0.1-1234.json");
}

TEST_CASE("vm state: one dbgstub per VM and folder (the lock), released with the file") {
  TempDir dir;
  auto first = std::make_unique<VmStateFile>(dir.path, kVm1);
  REQUIRE(first->lock());
  CHECK(first->lock());  // again by its holder: fine
  VmStateFile second(dir.path, kVm1);
  auto refused = second.lock();
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("another dbgstub serves VM vm1") != std::string::npos);
  VmStateFile other_vm(dir.path, VmIdentity{"vm2", "127.0.0.1:1235"});
  CHECK(other_vm.lock());
  first.reset();
  CHECK(second.lock());
}

TEST_CASE("vm state: the default folder is systemd's StateDirectory, else /var/lib/dbgstub") {
  const char* old = std::getenv("STATE_DIRECTORY");
  std::string saved = old ? old : "";
  ::setenv("STATE_DIRECTORY", "/var/lib/dbgstub/lab1:/var/lib/other", 1);
  CHECK(default_state_dir() == "/var/lib/dbgstub/lab1");
  ::unsetenv("STATE_DIRECTORY");
  CHECK(default_state_dir() == "/var/lib/dbgstub");
  if (old) ::setenv("STATE_DIRECTORY", saved.c_str(), 1);
}

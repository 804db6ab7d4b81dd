#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>


#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "protocol/rsp/hex.h"
#include "server/gdb/host_files.h"

using namespace dbgstub;
using Op = rsp::HostFile::Op;

namespace {
rsp::HostFile req(Op op) {
  rsp::HostFile f;
  f.op = op;
  return f;
}
}  // namespace

TEST_CASE("host I/O reads files and refuses to write") {
  char path[] = "/tmp/dbgstub-hostfile-XXXXXX";
  int tmp = mkstemp(path);
  REQUIRE(tmp >= 0);
  REQUIRE(write(tmp, "hello world", 11) == 11);
  close(tmp);

  HostFiles files;
  auto open = req(Op::Open);
  open.path = path;
  std::string r = files.handle(open, 4096);
  REQUIRE(r.size() > 1);
  REQUIRE(r[0] == 'F');
  REQUIRE(r[1] != '-');
  int64_t fd = static_cast<int64_t>(*rsp::parse_hex_u64(r.substr(1)));

  auto pread = req(Op::Pread);
  pread.fd = fd;
  pread.count = 5;
  pread.offset = 6;
  CHECK(files.handle(pread, 4096) == "F5;world");

  auto fstat = req(Op::Fstat);
  fstat.fd = fd;
  std::string st = files.handle(fstat, 4096);
  CHECK(st.rfind("F40;", 0) == 0);  // 64-byte struct
  CHECK(st.size() == 4 + 64);

  auto close_req = req(Op::Close);
  close_req.fd = fd;
  CHECK(files.handle(close_req, 4096) == "F0");
  CHECK(files.handle(close_req, 4096) == "F-1,9");  // EBADF

  // Writing, creating and deleting are refused (EROFS is fileio 30).
  auto write_open = open;
  write_open.flags = 0x1;
  CHECK(files.handle(write_open, 4096) == "F-1,1e");
  CHECK(files.handle(req(Op::Pwrite), 4096) == "F-1,1e");
  auto unlink = req(Op::Unlink);
  unlink.path = path;
  CHECK(files.handle(unlink, 4096) == "F-1,1e");
  CHECK(access(path, F_OK) == 0);

  auto missing = req(Op::Open);
  missing.path = "/nonexistent/file";
  CHECK(files.handle(missing, 4096) == "F-1,2");
  ::unlink(path);
}

TEST_CASE("host I/O bounds the number of open files") {
  HostFiles files;
  auto open = req(Op::Open);
  open.path = "/proc/self/status";
  int opened = 0;
  for (int i = 0; i < 100; ++i)
    if (files.handle(open, 4096)[1] != '-') ++opened;
  CHECK(opened == 64);
  CHECK(files.handle(open, 4096) == "F-1,18");  // EMFILE
}

TEST_CASE("host I/O writes and deletes only when allowed") {
  std::string path = "/tmp/dbgstub-hostfile-write-" + std::to_string(getpid());
  HostFiles files(true);
  auto open = req(Op::Open);
  open.path = path;
  open.flags = 0x1 | 0x200 | 0x400;  // WRONLY | CREAT | TRUNC (GDB's values)
  open.mode = 0644;
  std::string r = files.handle(open, 4096);
  REQUIRE(r[1] != '-');
  auto fd = static_cast<int64_t>(*rsp::parse_hex_u64(r.substr(1)));
  auto pwrite = req(Op::Pwrite);
  pwrite.fd = fd;
  pwrite.data = std::string("a#b$c}d*\0e", 10);
  CHECK(files.handle(pwrite, 4096) == "Fa");
  std::ifstream in(path, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(back == pwrite.data);
  auto unlink = req(Op::Unlink);
  unlink.path = path;
  CHECK(files.handle(unlink, 4096) == "F0");
  CHECK(access(path.c_str(), F_OK) != 0);
}

namespace {
// A tree for the root tests: ROOT/{in.txt, sub/, link-in -> in.txt,
// abs-in -> ROOT/in.txt, link-out -> ../outside.txt, abs-out -> /etc/hostname}
// and outside.txt next to ROOT.
struct Tree {
  std::string base, root;
  Tree() {
    char tmpl[] = "/tmp/dbgstub-root-XXXXXX";
    base = mkdtemp(tmpl);
    root = base + "/root";
    mkdir(root.c_str(), 0700);
    mkdir((root + "/sub").c_str(), 0700);
    std::ofstream(root + "/in.txt") << "inside";
    std::ofstream(base + "/outside.txt") << "outside";
    REQUIRE(symlink("in.txt", (root + "/link-in").c_str()) == 0);
    REQUIRE(symlink((root + "/in.txt").c_str(), (root + "/abs-in").c_str()) == 0);
    REQUIRE(symlink("../outside.txt", (root + "/link-out").c_str()) == 0);
    REQUIRE(symlink((base + "/outside.txt").c_str(), (root + "/abs-out").c_str()) == 0);
  }
  ~Tree() { std::system(("rm -rf " + base).c_str()); }
};

std::string open_reply(HostFiles& files, const std::string& path, uint64_t flags = 0) {
  rsp::HostFile f;
  f.op = Op::Open;
  f.path = path;
  f.flags = flags;
  f.mode = 0600;
  return files.handle(f, 4096);
}
bool opened(const std::string& reply) { return reply.size() > 1 && reply[0] == 'F' && reply[1] != '-'; }
}  // namespace

TEST_CASE("host I/O confined to a root: inside is served, escapes are refused") {
  Tree t;
  HostFiles files(false, t.root);
  CHECK(opened(open_reply(files, t.root + "/in.txt")));
  CHECK(opened(open_reply(files, "in.txt")));                    // relative: from the root
  CHECK(opened(open_reply(files, t.root + "/sub/../in.txt")));   // ".." that stays inside
  CHECK(opened(open_reply(files, t.root + "/link-in")));         // relative symlink inside
  CHECK(opened(open_reply(files, t.root + "/abs-in")));          // absolute symlink to inside
  CHECK(opened(open_reply(files, t.root)));                      // the root itself (a directory)
  const std::string eacces = "F-1,d";
  CHECK(open_reply(files, t.base + "/outside.txt") == eacces);   // outside
  CHECK(open_reply(files, "/etc/passwd") == eacces);
  CHECK(open_reply(files, t.root + "/../outside.txt") == eacces);  // ".." out
  CHECK(open_reply(files, "../outside.txt") == eacces);
  CHECK(open_reply(files, t.root + "/link-out") == eacces);       // symlinks out
  CHECK(open_reply(files, t.root + "/abs-out") == eacces);
  CHECK(open_reply(files, t.root + "x/in.txt") == eacces);        // a sibling sharing the prefix
  CHECK(open_reply(files, "/proc/self/root/etc/passwd") == eacces);

  // readlink: only links beneath the root.
  rsp::HostFile rl;
  rl.op = Op::Readlink;
  rl.path = t.root + "/link-in";
  CHECK(files.handle(rl, 4096) == "F6;in.txt");
  rl.path = t.base + "/root/../root/link-out";  // the link is inside; what it says is only text
  CHECK(files.handle(rl, 4096) == "Fe;../outside.txt");
  REQUIRE(symlink("x", (t.base + "/out-link").c_str()) == 0);
  rl.path = t.base + "/out-link";
  CHECK(files.handle(rl, 4096) == eacces);
  rl.path = t.root + "/../out-link";
  CHECK(files.handle(rl, 4096) == eacces);
  rl.path = "/proc/self/exe";
  CHECK(files.handle(rl, 4096) == eacces);
}

TEST_CASE("host I/O confined to a root: writes stay inside too") {
  Tree t;
  HostFiles files(true, t.root);
  constexpr uint64_t kCreateWrite = 0x1 | 0x200;
  CHECK(opened(open_reply(files, t.root + "/sub/new.txt", kCreateWrite)));
  CHECK(access((t.root + "/sub/new.txt").c_str(), F_OK) == 0);
  CHECK(open_reply(files, t.base + "/new.txt", kCreateWrite) == "F-1,d");
  CHECK(open_reply(files, t.root + "/../new.txt", kCreateWrite) == "F-1,d");
  CHECK(access((t.base + "/new.txt").c_str(), F_OK) != 0);
  rsp::HostFile un;
  un.op = Op::Unlink;
  un.path = t.root + "/sub/new.txt";
  CHECK(files.handle(un, 4096) == "F0");
  un.path = t.base + "/outside.txt";
  CHECK(files.handle(un, 4096) == "F-1,d");
  un.path = t.root + "/link-out/x";
  CHECK(files.handle(un, 4096) != "F0");
  CHECK(access((t.base + "/outside.txt").c_str(), F_OK) == 0);
}

TEST_CASE("host I/O with the root / reads what absolute symlinks name") {
  HostFiles files(false, "/");
  // /proc/self is a symlink; /etc/hostname a plain file.
  CHECK(opened(open_reply(files, "/etc/hostname")));
  CHECK(opened(open_reply(files, "/proc/self/status")));
  // Magic links are not followed, even beneath /.
  CHECK(open_reply(files, "/proc/self/root/etc/hostname") == "F-1,d");
  CHECK(open_reply(files, "/proc/self/exe") == "F-1,d");
  // gdb reads the dynamic loader by this name: an absolute symlink on Debian.
  if (access("/lib64/ld-linux-x86-64.so.2", R_OK) == 0)
    CHECK(opened(open_reply(files, "/lib64/ld-linux-x86-64.so.2")));
}

TEST_CASE("host I/O creates files with permission bits only, never set-id ones") {
  Tree t;
  HostFiles files(true, t.root);
  rsp::HostFile f;
  f.op = Op::Open;
  f.path = t.root + "/suid";
  f.flags = 0x1 | 0x200;  // WRONLY | CREAT
  f.mode = 06755;
  CHECK(opened(files.handle(f, 4096)));
  struct stat st{};
  REQUIRE(stat((t.root + "/suid").c_str(), &st) == 0);
  CHECK((st.st_mode & 07000) == 0);
  CHECK((st.st_mode & 0700) == 0700);
}

TEST_CASE("host I/O refuses pipes without waiting for a writer") {
  // Opening a FIFO for reading blocks until someone writes; dbgstub's one
  // event loop must not (a blocking open never returns here: no writer).
  Tree t;
  std::string fifo = t.root + "/fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  // Each open must return at once. Should one block after all, writers
  // come from 2 s on, so that the test fails rather than hangs.
  std::atomic<bool> done{false};
  std::thread rescue([&] {
    for (int i = 0; !done; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (i < 40) continue;
      int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (w >= 0) ::close(w);
    }
  });
  HostFiles confined(false, t.root), files;
  for (HostFiles* h : {&confined, &files}) {
    auto t0 = std::chrono::steady_clock::now();
    CHECK(open_reply(*h, fifo) == "F-1,1d");  // ESPIPE
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  }
  done = true;
  rescue.join();
  // Regular files still read after the non-blocking open.
  std::string r = open_reply(files, t.root + "/in.txt");
  REQUIRE(opened(r));
  rsp::HostFile pr;
  pr.op = Op::Pread;
  pr.fd = static_cast<int64_t>(*rsp::parse_hex_u64(r.substr(1)));
  pr.count = 100;
  CHECK(files.handle(pr, 4096) == "F6;inside");
}

TEST_CASE("host I/O: setfs serves dbgstub's view for any process") {
  HostFiles files;
  rsp::HostFile f;
  f.op = Op::SetFs;
  for (int64_t pid : {int64_t{0}, int64_t{getpid()}, int64_t{999999999}}) {
    f.fd = pid;
    CHECK(files.handle(f, 4096) == "F0");
  }
}

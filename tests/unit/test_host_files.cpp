#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>

#include "protocol/rsp/hex.h"
#include "server/host_files.h"

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

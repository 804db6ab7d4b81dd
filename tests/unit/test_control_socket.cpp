// The lab's control socket without a lab: its file's mode and lifetime, a
// stale file replaced and a foreign one left alone, bad and overlong lines
// answered without ending the service.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "server/lab/control_socket.h"

using namespace dbgstub;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/dbgstub-ctl-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  return tmpl;
}

int connect_to(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `data`, returns the next reply line ("" when the server closed).
std::string ask(int fd, const std::string& data) {
  if (!data.empty()) REQUIRE(::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()));
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

// A control socket on a thread of its own, answering status with no VMs.
struct Served {
  asio::io_context io;
  ControlSocket sock{io, [](const control::Request& r, ControlSocket::Respond respond) {
                       if (r.op == control::Op::Status) respond(control::format_status({}));
                       else respond(control::format_error("not here"));
                     }};
  std::thread thread;
  void run() {
    thread = std::thread([this] {
      auto work = asio::make_work_guard(io);
      io.run();
    });
  }
  ~Served() {
    io.stop();
    if (thread.joinable()) thread.join();
  }
};

}  // namespace

TEST_CASE("control socket: mode 0600, one reply per line, bad lines answered, removed at close") {
  std::string dir = temp_dir();
  std::string path = dir + "/ctl.sock";
  {
    Served s;
    REQUIRE(s.sock.open(path, ""));
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    s.run();
    int fd = connect_to(path);
    REQUIRE(fd >= 0);
    CHECK(ask(fd, "{nope\n") == R"({"error":"the request is not valid JSON","ok":false})");
    CHECK(ask(fd, "\n{\"op\":\"status\"}\r\n") == R"({"ok":true,"vms":[]})");
    CHECK(ask(fd, "{\"op\":\"reload\"}\n") == R"({"error":"not here","ok":false})");
    // Two requests in one write: two replies, in order.
    CHECK(ask(fd, "{\"op\":\"status\"}\n{\"op\":\"nope\"}\n") == R"({"ok":true,"vms":[]})");
    CHECK(ask(fd, "").find("unknown op 'nope'") != std::string::npos);
    ::close(fd);
    // A line past the limit: answered, and that connection closed; others go on.
    fd = connect_to(path);
    REQUIRE(fd >= 0);
    CHECK(ask(fd, std::string(control::kMaxLine + 10, 'x')).find("too long") != std::string::npos);
    CHECK(ask(fd, "") == "");
    ::close(fd);
    fd = connect_to(path);
    REQUIRE(fd >= 0);
    CHECK(ask(fd, "{\"op\":\"status\"}\n") == R"({"ok":true,"vms":[]})");
    ::close(fd);
    // A second server on a live socket is refused.
    asio::io_context io2;
    ControlSocket other(io2, [](const control::Request&, ControlSocket::Respond) {});
    auto st2 = other.open(path, "");
    REQUIRE(!st2);
    CHECK(st2.error().message.find("in use") != std::string::npos);
    // Closed on its own thread's behalf: that thread has stopped.
    s.io.stop();
    s.thread.join();
    s.sock.close();
  }
  CHECK(::access(path.c_str(), F_OK) != 0);
  ::rmdir(dir.c_str());
}

TEST_CASE("control socket: a stale socket file is replaced, another file is not touched") {
  std::string dir = temp_dir();
  std::string path = dir + "/ctl.sock";
  {
    // A socket file nobody listens on, as a dbgstub that died leaves it.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
    asio::io_context io;
    ControlSocket s(io, [](const control::Request&, ControlSocket::Respond) {});
    CHECK(s.open(path, ""));
    s.close();
  }
  std::ofstream(path) << "not a socket";
  asio::io_context io;
  ControlSocket s(io, [](const control::Request&, ControlSocket::Respond) {});
  auto st = s.open(path, "");
  REQUIRE(!st);
  CHECK(st.error().message.find("is not a socket") != std::string::npos);
  CHECK(s.open(dir + "/x.sock", "no-such-group-here").error().message ==
        "control_group: no such group 'no-such-group-here'");
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

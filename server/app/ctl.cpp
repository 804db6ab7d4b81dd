#include "server/app/ctl.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>

#include "server/lab/control_protocol.h"

namespace dbgstub {
namespace {

const char* kUsage =
    "Usage: dbgstub ctl --socket PATH status [--json]   the lab's VMs: ports, state, debugger, pending kills\n"
    "       dbgstub ctl --socket PATH kill VM PID       end guest process PID in VM (scheduled while a\n"
    "                                                   debugger holds the VM halted)\n"
    "       dbgstub ctl --socket PATH reload            re-read the lab file (as SIGHUP)\n";

// A kill waits for the guest agent (the server gives up after 45 s).
constexpr int kReplyTimeoutMs = 60000;

int usage_error(const std::string& why) {
  std::cerr << "dbgstub ctl: " << why << "\n" << kUsage;
  return 2;
}

// One request, one reply line, over a fresh connection.
std::optional<std::string> exchange(const std::string& path, const std::string& request, std::string& error) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    ::close(fd);
    error = "the path is too long for a Unix socket";
    return std::nullopt;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    error = std::string(std::strerror(errno)) + " (is dbgstub serving a lab with \"control\": \"" + path + "\"?)";
    ::close(fd);
    return std::nullopt;
  }
  std::string out = request + "\n";
  for (std::size_t done = 0; done < out.size();) {
    ssize_t n = ::send(fd, out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("sending: ") + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    done += static_cast<std::size_t>(n);
  }
  std::string in;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
  while (in.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    int r = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      error = "no reply within " + std::to_string(kReplyTimeoutMs / 1000) + " s";
      ::close(fd);
      return std::nullopt;
    }
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "the server closed the connection without a reply";
      ::close(fd);
      return std::nullopt;
    }
    in.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return in.substr(0, in.find('\n'));
}

}  // namespace

int run_ctl(const std::vector<std::string>& args) {
  std::string socket_path;
  bool json = false;
  std::vector<std::string> words;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--socket") {
      if (i + 1 >= args.size()) return usage_error("--socket needs a PATH");
      socket_path = args[++i];
    } else if (a.rfind("--socket=", 0) == 0) {
      socket_path = a.substr(9);
    } else if (a == "--json") {
      json = true;
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error("unknown option " + a);
    } else {
      words.push_back(a);
    }
  }
  if (socket_path.empty()) return usage_error("--socket PATH is required");
  if (words.empty()) return usage_error("which command: status, kill or reload?");
  control::Request req;
  const std::string& cmd = words[0];
  if (cmd == "status" && words.size() == 1) {
    req.op = control::Op::Status;
  } else if (cmd == "reload" && words.size() == 1) {
    req.op = control::Op::Reload;
  } else if (cmd == "kill" && words.size() == 3) {
    req.op = control::Op::Kill;
    req.vm = words[1];
    const std::string& pid = words[2];
    if (pid.empty() || pid.size() > 10 || pid.find_first_not_of("0123456789") != std::string::npos ||
        std::stoll(pid) <= 0 || std::stoll(pid) > 0x7fffffff)
      return usage_error("PID must be a positive number, not '" + pid + "'");
    req.pid = static_cast<int>(std::stoll(pid));
  } else if (cmd == "status" || cmd == "reload" || cmd == "kill") {
    return usage_error("wrong arguments for " + cmd);
  } else {
    return usage_error("unknown command '" + cmd + "'");
  }
  if (json && req.op != control::Op::Status) return usage_error("--json goes with status");

  std::string error;
  auto line = exchange(socket_path, control::format_request(req), error);
  if (!line) {
    std::cerr << "dbgstub ctl: " << socket_path << ": " << error << "\n";
    return 2;
  }
  auto reply = control::parse_reply(*line);
  if (!reply) {
    std::cerr << "dbgstub ctl: " << reply.error().message << "\n";
    return 2;
  }
  if (json) std::cout << *line << "\n";
  if (!reply->ok) {
    std::cerr << "dbgstub ctl: " << reply->error << "\n";
    return 1;
  }
  if (json) return 0;
  switch (req.op) {
    case control::Op::Status: std::cout << control::status_table(reply->vms); break;
    case control::Op::Kill:
      std::cout << reply->result << ": " << reply->message << "\n";
      break;
    case control::Op::Reload: {
      auto list = [](const std::vector<std::string>& v) {
        std::string s;
        for (auto& n : v) s += (s.empty() ? "" : ", ") + n;
        return s.empty() ? std::string("-") : s;
      };
      std::cout << "kept: " << list(reply->reload.kept) << "\nstarted: " << list(reply->reload.started)
                << "\nstopped: " << list(reply->reload.stopped) << "\n";
      break;
    }
  }
  return 0;
}

}  // namespace dbgstub

#include "server/lab/control_socket.h"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

namespace dbgstub {

// One client: reads a line, hands it on, writes the reply, reads the next.
// One request at a time per client keeps its replies in its requests' order.
struct ControlSocket::Connection : std::enable_shared_from_this<Connection> {
  Connection(asio::io_context& io, asio::local::stream_protocol::socket s, Handler h, std::shared_ptr<bool> open)
      : io(io), socket(std::move(s)), handler(std::move(h)), open(std::move(open)) {}

  asio::io_context& io;
  asio::local::stream_protocol::socket socket;
  Handler handler;
  std::shared_ptr<bool> open;
  std::string in;
  std::string out;

  void read() {
    auto self = shared_from_this();
    asio::async_read_until(socket, asio::dynamic_buffer(in, control::kMaxLine + 1), '\n',
                           [self](const asio::error_code& ec, std::size_t n) { self->on_line(ec, n); });
  }

  void on_line(const asio::error_code& ec, std::size_t n) {
    if (ec == asio::error::not_found) {
      // No newline within the limit: answered, then dropped (the rest of
      // its line can't be told from a next request).
      spdlog::warn("control: a request longer than {} bytes; closing that connection", control::kMaxLine);
      return write(control::format_error("request too long (at most " + std::to_string(control::kMaxLine) +
                                         " bytes)"),
                   false);
    }
    // The client hung up, or the lab is ending (its handler may be gone).
    if (ec || !*open) return;
    std::string line = in.substr(0, n - 1);
    in.erase(0, n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) return read();  // blank lines are no requests
    auto req = control::parse_request(line);
    if (!req) {
      spdlog::warn("control: bad request: {}", req.error().message);
      return write(control::format_error(req.error().message), true);
    }
    auto self = shared_from_this();
    handler(*req, [self](std::string reply) {
      // From whichever thread answered: back to the socket's own.
      asio::post(self->io, [self, reply = std::move(reply)]() mutable {
        if (*self->open) self->write(std::move(reply), true);
      });
    });
  }

  void write(std::string reply, bool then_read) {
    out = std::move(reply) + "\n";
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(out), [self, then_read](const asio::error_code& ec, std::size_t) {
      if (ec || !then_read) {
        asio::error_code e;
        self->socket.close(e);
        return;
      }
      self->read();
    });
  }
};

ControlSocket::ControlSocket(asio::io_context& io, Handler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io) {}

ControlSocket::~ControlSocket() { close(); }

namespace {

// Someone answers on `path`: another dbgstub (or anything) is serving it.
bool someone_listens(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool yes = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return yes;
}

}  // namespace

Status ControlSocket::open(const std::string& path, const std::string& group) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return make_error(ENAMETOOLONG, "control: '" + path + "' is too long for a Unix socket's name");
  gid_t gid = 0;
  if (!group.empty()) {
    struct group gr{};
    struct group* found = nullptr;
    std::vector<char> buf(16384);
    if (::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
      return make_error(ENOENT, "control_group: no such group '" + group + "'");
    gid = found->gr_gid;
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    // Never remove a file that isn't a socket, nor one that is served.
    if (!S_ISSOCK(st.st_mode)) return make_error(EEXIST, "control: '" + path + "' exists and is not a socket");
    if (someone_listens(path)) return make_error(EADDRINUSE, "control: '" + path + "' is in use (another dbgstub?)");
    ::unlink(path.c_str());  // left by a dbgstub that died
  }
  asio::error_code ec;
  asio::local::stream_protocol::endpoint ep(path);
  acceptor_.open(ep.protocol(), ec);
  // The socket file is created by bind with the umask's mode: made 0600
  // from the start, so it is never connectable by others, even briefly.
  // (umask is the process's; this runs at start-up, before any VM's thread.)
  if (!ec) {
    mode_t old = ::umask(0177);
    acceptor_.bind(ep, ec);
    ::umask(old);
  }
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    asio::error_code e;
    acceptor_.close(e);
    return make_error(ec.value(), "control: cannot listen on '" + path + "': " + ec.message());
  }
  path_ = path;
  *open_ = true;
  if (!group.empty() && (::chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0 || ::chmod(path.c_str(), 0660) != 0)) {
    int e = errno;
    close();
    return make_error(e, "control: giving '" + path + "' to group '" + group + "': " + std::strerror(e));
  }
  spdlog::info("control socket on {}", path);
  accept();
  return ok_status();
}

void ControlSocket::accept() {
  acceptor_.async_accept([this, open = open_](const asio::error_code& ec, asio::local::stream_protocol::socket s) {
    if (!*open) return;
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::warn("control: accept: {}", ec.message());
      return;
    }
    std::make_shared<Connection>(io_, std::move(s), handler_, open_)->read();
    accept();
  });
}

void ControlSocket::close() {
  if (!*open_) return;
  *open_ = false;
  asio::error_code ec;
  acceptor_.close(ec);
  ::unlink(path_.c_str());
}

}  // namespace dbgstub

// The client side of one gdbstub connection. See gdbstub_connection.h for
// why requests are synchronous and the stop wait is not.
#include "targets/vm/gdbstub_connection.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <asio/post.hpp>
#include <cerrno>
#include <array>
#include <cstring>

namespace dbgstub::vm {
namespace {

// Far above QEMU's PacketSize (4 KiB): a reply beyond this is garbage.
constexpr std::size_t kMaxPacket = 256 * 1024;
// A stub that keeps answering '-' to the same packet is not going to take it.
constexpr int kMaxResends = 3;


}  // namespace

GdbstubConnection::GdbstubConnection(asio::io_context& io, std::chrono::milliseconds timeout)
    : io_(io), socket_(io), timeout_(timeout), framer_(kMaxPacket) {}

GdbstubConnection::~GdbstubConnection() {
  *alive_ = false;
  close();
}

Status GdbstubConnection::connect(const std::string& host, uint16_t port) {
  close();
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    asio::ip::tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty())
      return make_error(EHOSTUNREACH, "cannot resolve " + host + ": " + (ec ? ec.message() : "no address"));
    addr = results.begin()->endpoint().address();
  }
  asio::ip::tcp::endpoint ep(addr, port);
  socket_.open(ep.protocol(), ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (ec) return make_error(ec.value(), "socket: " + ec.message());
  // A non-blocking connect polled with the deadline: Asio's synchronous
  // connect would wait as long as the kernel does.
  int fd = socket_.native_handle();
  if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0) {
    int err = errno;
    if (err != EINPROGRESS) {
      close();
      return make_error(err, std::strerror(err));
    }
    if (auto st = wait_ready(Wait::Write, Clock::now() + timeout_); !st) {
      close();
      return make_error(ETIMEDOUT, "no answer within " + std::to_string(timeout_.count()) + " ms");
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
    if (so_error != 0) {
      close();
      return make_error(so_error, std::strerror(so_error));
    }
  }
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  return ok_status();
}

void GdbstubConnection::close() {
  cancel_async();
  asio::error_code ec;
  if (socket_.is_open()) {
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }
  events_.clear();
  framer_ = rsp::Framer(kMaxPacket);
  ack_mode_ = true;  // every new connection starts acknowledging
  last_frame_.clear();
  resends_ = 0;
}

Error GdbstubConnection::lost(Error e) {
  close();
  e.message += " (connection to the gdbstub closed)";
  return e;
}

Status GdbstubConnection::wait_ready(Wait what, Clock::time_point deadline) {
  pollfd p{};
  p.fd = socket_.native_handle();
  p.events = what == Wait::Read ? POLLIN : POLLOUT;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return make_error(ETIMEDOUT, "the gdbstub did not answer within " +
                                                    std::to_string(timeout_.count()) + " ms");
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return ok_status();  // ready, or an error the next read/write reports
    if (n < 0 && errno != EINTR) return make_error(errno, std::string("poll: ") + std::strerror(errno));
  }
}

Status GdbstubConnection::write_all(std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    asio::error_code ec;
    std::size_t n = socket_.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      if (auto st = wait_ready(Wait::Write, deadline); !st) return st;
      continue;
    }
    if (ec) return make_error(ec.value(), "writing to the gdbstub: " + ec.message());
    bytes.remove_prefix(n);
  }
  return ok_status();
}

bool GdbstubConnection::read_available(Error& error) {
  std::array<char, 16384> buf{};
  while (true) {
    asio::error_code ec;
    std::size_t n = socket_.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
    if (ec == asio::error::eof) {
      error = make_error(ECONNRESET, "the gdbstub closed the connection");
      return false;
    }
    if (ec) {
      error = make_error(ec.value(), "reading from the gdbstub: " + ec.message());
      return false;
    }
    std::vector<rsp::FrameEvent> decoded;
    framer_.feed(std::string_view(buf.data(), n), decoded);
    for (auto& e : decoded) events_.push_back(std::move(e));
    if (n < buf.size()) return true;
  }
}

Result<std::optional<std::string>> GdbstubConnection::take_packet() {
  using K = rsp::FrameEvent::Kind;
  auto deadline = Clock::now() + timeout_;
  while (!events_.empty()) {
    rsp::FrameEvent e = std::move(events_.front());
    events_.pop_front();
    switch (e.kind) {
      case K::Packet:
        if (ack_mode_) {
          if (auto st = write_all("+", deadline); !st) return st.error();
        }
        resends_ = 0;
        if (log_packets_) spdlog::info("vm <- ${}", rsp::printable(e.payload, 256));
        else spdlog::trace("vm <- ${}", rsp::printable(e.payload, 256));
        return std::optional<std::string>(std::move(e.payload));
      case K::Ack:
        resends_ = 0;
        break;
      case K::Nack:
        if (last_frame_.empty() || ++resends_ > kMaxResends)
          return make_error(EPROTO, "the gdbstub keeps rejecting our packet");
        if (auto st = write_all(last_frame_, deadline); !st) return st.error();
        break;
      case K::BadChecksum:
        // In ack mode the stub sends it again after our '-'; without acks
        // a corrupted packet can't be recovered.
        if (!ack_mode_) return make_error(EPROTO, "a packet from the gdbstub had a bad checksum");
        if (auto st = write_all("-", deadline); !st) return st.error();
        break;
      case K::Oversize:
        return make_error(EPROTO, "the gdbstub sent a packet longer than " + std::to_string(kMaxPacket) + " bytes");
      case K::Malformed:
      case K::Interrupt:
        spdlog::debug("gdbstub: ignored bytes outside packets: {}", e.payload);
        break;
    }
  }
  return std::optional<std::string>();
}

Result<std::string> GdbstubConnection::wait_packet(Clock::time_point deadline) {
  while (true) {
    auto p = take_packet();
    if (!p) return lost(p.error());
    if (*p) return std::move(**p);
    if (auto st = wait_ready(Wait::Read, deadline); !st) return lost(st.error());
    Error err;
    if (!read_available(err)) return lost(err);
  }
}

Status GdbstubConnection::send(std::string_view payload) {
  if (!is_open()) return make_error(ENOTCONN, "not connected to the gdbstub");
  if (log_packets_) spdlog::info("vm -> ${}", rsp::printable(payload, 256));
  else spdlog::trace("vm -> ${}", rsp::printable(payload, 256));
  last_frame_ = rsp::frame_packet(payload);
  resends_ = 0;
  if (auto st = write_all(last_frame_, Clock::now() + timeout_); !st) return lost(st.error());
  return ok_status();
}

Result<std::string> GdbstubConnection::request(std::string_view payload) {
  if (async_pending_) return make_error(EBUSY, "the VM is running: stop it first");
  auto deadline = Clock::now() + timeout_;
  if (auto st = send(payload); !st) return st.error();
  return wait_packet(deadline);
}

Status GdbstubConnection::send_interrupt() {
  if (!is_open()) return make_error(ENOTCONN, "not connected to the gdbstub");
  if (log_packets_) spdlog::info("vm -> \\x03");
  if (auto st = write_all(std::string_view("\x03", 1), Clock::now() + timeout_); !st) return lost(st.error());
  return ok_status();
}

Result<std::string> GdbstubConnection::next_packet() {
  if (!is_open()) return make_error(ENOTCONN, "not connected to the gdbstub");
  return wait_packet(Clock::now() + timeout_);
}

Result<std::optional<std::string>> GdbstubConnection::next_packet_until(Clock::time_point deadline) {
  if (!is_open()) return make_error(ENOTCONN, "not connected to the gdbstub");
  while (true) {
    auto p = take_packet();
    if (!p) return lost(p.error());
    if (*p) return std::optional<std::string>(std::move(**p));
    if (auto st = wait_ready(Wait::Read, deadline); !st) {
      if (st.error().code == ETIMEDOUT) return std::optional<std::string>();
      return lost(st.error());
    }
    Error err;
    if (!read_available(err)) return lost(err);
  }
}

void GdbstubConnection::async_next_packet(PacketHandler handler) {
  cancel_async();
  async_handler_ = std::move(handler);
  async_pending_ = true;
  arm_async();
}

void GdbstubConnection::cancel_async() {
  if (!async_pending_) return;
  async_pending_ = false;
  ++async_generation_;
  async_handler_ = nullptr;
  asio::error_code ec;
  socket_.cancel(ec);
}

void GdbstubConnection::arm_async() {
  uint64_t gen = async_generation_;
  std::weak_ptr<bool> alive = alive_;
  auto step = [this, alive, gen](const asio::error_code& ec) {
    if (alive.expired() || gen != async_generation_ || !async_pending_) return;
    Result<std::optional<std::string>> got = std::optional<std::string>();
    Error err;
    if (ec) got = make_error(ec.value(), "waiting for the gdbstub: " + ec.message());
    else if (!read_available(err)) got = err;
    else got = take_packet();
    if (got && !*got) return arm_async();  // no whole packet yet
    // Done. The handler is taken first: a failure closes the connection,
    // and closing drops pending waits.
    auto h = std::move(async_handler_);
    async_handler_ = nullptr;
    async_pending_ = false;
    ++async_generation_;
    Result<std::string> r = got ? Result<std::string>(std::move(**got)) : Result<std::string>(lost(got.error()));
    if (h) h(std::move(r));
  };
  if (!socket_.is_open()) {
    asio::post(io_, [step] { step(asio::error::not_connected); });
    return;
  }
  if (!events_.empty()) {
    // Already read (after an earlier packet): deliver from the loop, never
    // from inside the call that asked.
    asio::post(io_, [step] { step(asio::error_code()); });
    return;
  }
  socket_.async_wait(asio::ip::tcp::socket::wait_read, step);
}

}  // namespace dbgstub::vm

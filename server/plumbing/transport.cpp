#include "server/plumbing/transport.h"

#include <unistd.h>

#include <asio/post.hpp>
#include <asio/write.hpp>

namespace dbgstub {

TcpTransport::TcpTransport(asio::ip::tcp::socket s) : socket_(std::move(s)) {
  asio::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);  // replies are small and latency-bound
}

void TcpTransport::read_some(asio::mutable_buffer buf, Handler h) { socket_.async_read_some(buf, std::move(h)); }

void TcpTransport::write_all(asio::const_buffer buf, Handler h) { asio::async_write(socket_, buf, std::move(h)); }

void TcpTransport::close() {
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

void TcpTransport::defer(std::function<void()> f) { asio::post(socket_.get_executor(), std::move(f)); }

// Duplicates, so closing the session never closes fd 0/1 under the
// process (or the logger, which writes to fd 2).
StdioTransport::StdioTransport(asio::io_context& io) : in_(io, ::dup(0)), out_(io, ::dup(1)) {}

void StdioTransport::read_some(asio::mutable_buffer buf, Handler h) { in_.async_read_some(buf, std::move(h)); }

void StdioTransport::write_all(asio::const_buffer buf, Handler h) { asio::async_write(out_, buf, std::move(h)); }

void StdioTransport::defer(std::function<void()> f) { asio::post(in_.get_executor(), std::move(f)); }

void StdioTransport::close() {
  asio::error_code ec;
  in_.close(ec);
  out_.close(ec);
}

}  // namespace dbgstub

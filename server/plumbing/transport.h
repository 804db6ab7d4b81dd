// The byte stream a session talks over: a TCP connection, or (gdb's
// "target remote | dbgstub - PROG") the stub's own stdin and stdout.
#pragma once
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <functional>
#include <string>

namespace dbgstub {

class Transport {
 public:
  using Handler = std::function<void(const asio::error_code&, std::size_t)>;
  virtual ~Transport() = default;
  virtual void read_some(asio::mutable_buffer buf, Handler h) = 0;
  virtual void write_all(asio::const_buffer buf, Handler h) = 0;
  virtual void close() = 0;
  // Runs `f` later on the connection's event loop (not from inside this call).
  virtual void defer(std::function<void()> f) = 0;
  // True when the transport itself acknowledges GDB's packets and answers
  // its '-' (the front door's relay): the session then writes no '+'/'-'.
  virtual bool acknowledges() const { return false; }
  // QStartNoAckMode was accepted (or, with false, not): for a transport
  // that acknowledges.
  virtual void set_ack_mode(bool /*on*/) {}
};

class TcpTransport : public Transport {
 public:
  explicit TcpTransport(asio::ip::tcp::socket s);
  void read_some(asio::mutable_buffer buf, Handler h) override;
  void write_all(asio::const_buffer buf, Handler h) override;
  void close() override;
  void defer(std::function<void()> f) override;

 private:
  asio::ip::tcp::socket socket_;
};

class StdioTransport : public Transport {
 public:
  explicit StdioTransport(asio::io_context& io);
  void read_some(asio::mutable_buffer buf, Handler h) override;
  void write_all(asio::const_buffer buf, Handler h) override;
  void close() override;
  void defer(std::function<void()> f) override;

 private:
  asio::posix::stream_descriptor in_, out_;
};

}  // namespace dbgstub

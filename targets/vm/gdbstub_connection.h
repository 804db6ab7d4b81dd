// One TCP connection to a gdbstub (QEMU's), dbgstub being the client:
// framing, acknowledgements, requests with a deadline, and an asynchronous
// wait for the packet that ends a resume.
//
// Two ways of reading, never at the same time:
//  - request(): synchronous, on the loop's thread, bounded by a deadline.
//    The Target interface is synchronous, and while the VM is halted QEMU
//    (on loopback) answers in microseconds. A stub that doesn't answer in
//    time is treated as lost: the connection is closed and every later
//    request fails at once, so the loop is never held for long.
//  - async_next_packet(): while the VM runs the stop reply comes whenever
//    the VM stops, so the loop waits for the socket to become readable and
//    goes on serving other work meanwhile. It waits for readability
//    (async_wait) and reads with non-blocking calls itself, so cancelling
//    the wait never leaves bytes in a buffer owned by a pending handler.
#pragma once
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "protocol/rsp/framing.h"

namespace dbgstub::vm {

class GdbstubConnection {
 public:
  using PacketHandler = std::function<void(Result<std::string>)>;

  explicit GdbstubConnection(asio::io_context& io, std::chrono::milliseconds timeout = std::chrono::seconds(3));
  ~GdbstubConnection();
  GdbstubConnection(const GdbstubConnection&) = delete;
  GdbstubConnection& operator=(const GdbstubConnection&) = delete;

  // Connects within the timeout (a name is resolved first).
  Status connect(const std::string& host, uint16_t port);
  void close();
  bool is_open() const { return socket_.is_open(); }
  // After the stub's OK to QStartNoAckMode: no more '+' either way.
  void stop_acks() { ack_mode_ = false; }
  bool ack_mode() const { return ack_mode_; }
  void set_log_packets(bool on) { log_packets_ = on; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Sends `payload` and returns the stub's reply. Any failure (timeout,
  // closed socket, garbage) closes the connection.
  Result<std::string> request(std::string_view payload);
  // Sends a packet whose reply comes later (a resume): the reply is read by
  // async_next_packet() or next_packet().
  Status send(std::string_view payload);
  // The interrupt byte, outside any packet.
  Status send_interrupt();
  // Synchronous wait for the stub's next packet (bounded by the timeout).
  Result<std::string> next_packet();
  // The same until `deadline`, which may be long (a VM left running for a
  // while): nullopt when nothing came by then, the connection kept.
  Result<std::optional<std::string>> next_packet_until(std::chrono::steady_clock::time_point deadline);

  // Calls `handler` on the loop with the next packet from the stub, or an
  // error if the connection fails. One wait at a time.
  void async_next_packet(PacketHandler handler);
  // Drops a pending async_next_packet(): its handler is never called.
  void cancel_async();
  bool async_pending() const { return async_pending_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Wait { Read, Write };

  Status write_all(std::string_view bytes, Clock::time_point deadline);
  Status wait_ready(Wait what, Clock::time_point deadline);
  // Reads what the socket has now (non-blocking) into the framer; false
  // with `error` set when the connection failed or closed.
  bool read_available(Error& error);
  // Takes the next packet from the decoded events, answering acks on the
  // way; nullopt when none is complete yet.
  Result<std::optional<std::string>> take_packet();
  Result<std::string> wait_packet(Clock::time_point deadline);
  Error lost(Error e);
  void arm_async();

  asio::io_context& io_;
  asio::ip::tcp::socket socket_;
  std::chrono::milliseconds timeout_;
  rsp::Framer framer_;
  std::deque<rsp::FrameEvent> events_;
  bool ack_mode_ = true;
  bool log_packets_ = false;
  std::string last_frame_;  // resent when the stub answers '-'
  int resends_ = 0;
  bool async_pending_ = false;
  uint64_t async_generation_ = 0;
  PacketHandler async_handler_;
  // Handlers check this before touching the object: the loop may run a
  // completion after the connection (or its target) is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dbgstub::vm

// The front door of kernel-mode targets: one thread that owns the listening
// sockets and debugger connections in front of VMs, apart from the threads
// that drive the VMs (one each, see server/lab/vm_host.h).
//
// Why: a VM's thread may be busy for seconds (connecting, reading the
// kernel's symbols, waiting up to its deadline on a gdbstub that does not
// answer), and gdb retransmits a packet that is not acknowledged within its
// 2 s timeout; both copies then get answered and gdb takes every reply
// after as the answer to the request before. Here a connection is accepted,
// read, and each GDB packet acknowledged the moment it arrives, whatever
// the VM's thread is doing; the packet is then handed to that thread.
//
// The relay also keeps the session in step when a client does retransmit
// (no-ack clients, or acks lost in the client): a packet equal to one
// whose reply has not gone out yet is a retransmission and is dropped
// (acknowledged, not answered twice), and a '-' while a reply is still
// being prepared is ignored instead of answered with the previous reply.
#pragma once
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "server/plumbing/transport.h"

namespace dbgstub {

class FrontDoor {
 public:
  FrontDoor();
  ~FrontDoor();  // stops the thread and joins it
  FrontDoor(const FrontDoor&) = delete;
  FrontDoor& operator=(const FrontDoor&) = delete;

  asio::io_context& io() { return io_; }
  // Runs `f` on the front door's thread.
  void post(std::function<void()> f);
  // Runs `f` on the front door's thread and waits for it (at once when
  // called from that thread, or once the door has stopped).
  void run(const std::function<void()>& f);
  void stop();

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::atomic<bool> running_{true};
};

// What a relay carries: GDB's protocol (framed and acknowledged on the
// front door) or plain bytes (KD, whose acknowledgements are the KD
// session's own).
enum class Relayed { Rsp, Bytes };

// The transport of a connection accepted on the front door (`socket` is on
// door.io()), for a session that runs on `session_io`. It starts reading at
// once. `max_packet`: the longest RSP packet taken (the session's own).
std::unique_ptr<Transport> make_relay(FrontDoor& door, asio::ip::tcp::socket socket, asio::io_context& session_io,
                                      Relayed what, std::size_t max_packet);

}  // namespace dbgstub

// A client of the QEMU guest agent (QGA): JSON commands over the unix
// socket QEMU exposes for the guest's agent channel, to act inside a VM's
// operating system (run a program, read a file).
//
// The agent answers only while the VM runs; a debugger holding the VM
// halted gets no answer, so every operation has a deadline. Operations run
// one at a time on the event loop (never blocking it); each starts with a
// guest-sync-delimited exchange, which also drops late replies of an
// operation that timed out.
//
// The agent is shared: QEMU's agent channel serves one client at a time,
// and the lab's management layer, backups (guest-fsfreeze-*) and scripts
// use it too. So the socket is connected for an operation (or a burst of
// queued ones) and closed as soon as none is left: dbgstub never holds it
// while idle. An agent that does not answer the sync at once is busy with
// another client (or its guest is halted): that is logged and told to
// the operation's `notice`, and waited for up to the operation's deadline.
#pragma once
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace dbgstub::guest {

struct ExecResult {
  int exit_code = -1;   // -1: ended by a signal
  std::string out, err;
};

// Decodes base64 as QGA sends it (out-data, err-data); whitespace ignored.
Result<std::string> base64_decode(std::string_view text);

class QgaClient {
 public:
  using ExecDone = std::function<void(Result<ExecResult>)>;

  QgaClient(asio::io_context& io, std::string socket_path);
  ~QgaClient();
  const std::string& path() const { return path_; }

  // Runs argv[0] with its arguments in the guest and collects its output.
  using Notice = std::function<void(const std::string&)>;
  void exec(std::vector<std::string> argv, std::chrono::milliseconds timeout, ExecDone done, Notice notice = nullptr);
  // How long the sync may take before the agent counts as busy.
  static constexpr std::chrono::milliseconds kBusyAfter{2000};

  // The same, for use before the event loop serves anything (startup):
  // runs the loop until the answer is in.
  Result<ExecResult> exec_now(std::vector<std::string> argv, std::chrono::milliseconds timeout);

 private:
  struct Op;
  void start_next();
  void finish(Result<ExecResult> r);
  void send(const std::string& json, std::function<void()> then);
  void read_reply(std::function<void(Result<std::string>)> on_line);
  void sync();
  void await_sync();
  void launch();
  void poll();

  asio::io_context& io_;
  std::string path_;
  asio::local::stream_protocol::socket socket_;
  asio::streambuf in_;
  asio::steady_timer deadline_, poll_timer_, busy_timer_;
  std::deque<std::shared_ptr<Op>> queue_;
  std::shared_ptr<Op> op_;  // the one running
  uint64_t next_sync_id_ = 1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace dbgstub::guest

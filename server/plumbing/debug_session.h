// What the server needs of one debugger connection, whatever protocol it
// speaks: GDB's remote protocol (Session) or WinDbg's KD (KdSession).
#pragma once
#include <asio/io_context.hpp>
#include <chrono>
#include <functional>

#include "targets/target.h"

namespace dbgstub {

struct SessionEvents {
  std::function<void()> closed;        // the connection is gone
  std::function<void()> exit_server;   // monitor exit
  std::function<void()> maybe_finish;  // check whether the server should end
};

class DebugSession {
 public:
  virtual ~DebugSession() = default;
  virtual void start() = 0;
  // A client that sends nothing within this time after connecting is
  // dropped, so a silent connection can't hold the target (0 = never).
  virtual void set_handshake_timeout(asio::io_context& io, std::chrono::seconds t) = 0;
  // Closes after everything queued has been written.
  virtual void close_when_flushed() = 0;
  // Closes now without telling the server: the event loop is ending, and
  // the pending reads that hold this session must finish while its target
  // still exists (see Server::finish).
  virtual void abandon() = 0;
  virtual void on_stop(const StopEvent& ev) = 0;
  // False for a connection that never sent a packet (not a debugger yet).
  virtual bool heard_from_client() const = 0;
  // GDB's extended mode: stay up with no process.
  virtual bool extended() const { return false; }
  virtual bool non_stop() const { return false; }
};

}  // namespace dbgstub

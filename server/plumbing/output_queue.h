// Bytes on their way to a debugger: written one buffer after another, and
// bounded, so that a client that stops reading can't make dbgstub buffer
// without end (past the bound the connection is given up). Shared by the
// GDB and the KD sessions.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "server/plumbing/transport.h"

namespace dbgstub {

class OutputQueue {
 public:
  static constexpr std::size_t kMaxQueued = 16 << 20;

  // `peer` names the other side in log lines ("debugger", "KD debugger").
  // on_failure: the peer stopped reading or a write failed (the owner hangs
  // up); on_drained: everything queued has been written.
  OutputQueue(Transport& transport, std::string peer, std::function<void()> on_failure,
              std::function<void()> on_drained);

  // `keep_alive` (the owning session) is held by the pending write.
  void write(std::string bytes, std::shared_ptr<void> keep_alive);
  bool idle() const { return !writing_; }

 private:
  void write_next(std::shared_ptr<void> keep_alive);
  void fail();

  Transport& transport_;
  std::string peer_;
  std::function<void()> on_failure_, on_drained_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool failed_ = false;
  std::size_t queued_bytes_ = 0;
};

}  // namespace dbgstub

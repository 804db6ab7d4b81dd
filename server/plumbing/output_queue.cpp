#include "server/plumbing/output_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace dbgstub {

OutputQueue::OutputQueue(Transport& transport, std::string peer, std::function<void()> on_failure,
                         std::function<void()> on_drained)
    : transport_(transport), peer_(std::move(peer)), on_failure_(std::move(on_failure)),
      on_drained_(std::move(on_drained)) {}

void OutputQueue::write(std::string bytes, std::shared_ptr<void> keep_alive) {
  if (failed_) return;
  queued_bytes_ += bytes.size();
  if (queued_bytes_ > kMaxQueued) {
    spdlog::warn("{} is not reading ({} bytes unsent): closing the connection", peer_, queued_bytes_);
    // The buffer being written stays until its write completes (the
    // transport still points into it); fail() empties the rest then.
    fail();
    return;
  }
  out_.push_back(std::move(bytes));
  if (!writing_) write_next(std::move(keep_alive));
}

void OutputQueue::write_next(std::shared_ptr<void> keep_alive) {
  if (out_.empty()) {
    writing_ = false;
    on_drained_();
    return;
  }
  writing_ = true;
  transport_.write_all(asio::buffer(out_.front()), [this, keep_alive](const asio::error_code& ec, std::size_t) {
    if (ec || failed_) {
      if (!failed_) spdlog::info("write to {} failed ({})", peer_, ec.message());
      writing_ = false;
      fail();
      return;
    }
    queued_bytes_ -= std::min(queued_bytes_, out_.front().size());
    out_.pop_front();
    write_next(keep_alive);
  });
}

// Once: nothing more is written, and the owner hangs up.
void OutputQueue::fail() {
  if (!writing_) {
    out_.clear();
    queued_bytes_ = 0;
  }
  if (failed_) return;
  failed_ = true;
  on_failure_();
}

}  // namespace dbgstub

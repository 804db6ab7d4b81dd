#include "server/event_loop.h"

namespace dbgstub {
namespace {

// One poll with nothing ready is an epoll_wait with a zero timeout, about a
// microsecond; a gap this much longer means the scheduler ran something
// else on this CPU meanwhile.
constexpr std::chrono::microseconds kPreempted{50};

}  // namespace

void run_event_loop(asio::io_context& io, std::chrono::microseconds spin) {
  if (spin.count() <= 0) {
    io.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  auto last = Clock::now();
  auto quiet_until = last + spin;
  for (;;) {
    // poll() runs what is ready without blocking; it returns 0 both when
    // nothing is ready and when the loop has run out of work, which
    // stopped() tells apart.
    std::size_t ran = io.poll();
    auto now = Clock::now();
    if (ran > 0) {
      quiet_until = now + spin;
    } else if (io.stopped()) {
      return;
    } else if (now >= quiet_until || now - last > kPreempted) {
      if (io.run_one() == 0) return;  // blocks until something is ready
      now = Clock::now();
      quiet_until = now + spin;
    }
    last = now;
  }
}

}  // namespace dbgstub

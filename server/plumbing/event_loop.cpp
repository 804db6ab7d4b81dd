#include "server/plumbing/event_loop.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <charconv>

namespace dbgstub {
namespace {

using Clock = std::chrono::steady_clock;

// One poll with nothing ready is an epoll_wait with a zero timeout, about a
// microsecond; a gap this much longer means the scheduler ran something
// else on this CPU meanwhile.
constexpr std::chrono::microseconds kPreempted{50};
// How long an answer about spare CPUs is trusted.
constexpr std::chrono::milliseconds kLoadAge{50};

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return CPU_COUNT(&set);
}

// Whether a CPU is free for this thread to spin on: the runnable tasks
// (this thread among them) fit on the CPUs it may use.
class SpareCpu {
 public:
  bool now(Clock::time_point t) {
    if (t - checked_ >= kLoadAge) {
      checked_ = t;
      spare_ = read_spare();
    }
    return spare_;
  }

 private:
  bool read_spare() const {
    int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[128];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n <= 0) return false;
    auto running = runnable_tasks(std::string_view(buf, static_cast<std::size_t>(n)));
    return running && *running <= cpus_;
  }
  int cpus_ = usable_cpus();
  Clock::time_point checked_{};
  bool spare_ = false;
};

}  // namespace

std::optional<int> runnable_tasks(std::string_view loadavg) {
  // Three load averages, then "RUNNABLE/TOTAL".
  std::size_t pos = 0;
  for (int field = 0; field < 3; ++field) {
    pos = loadavg.find(' ', pos);
    if (pos == std::string_view::npos) return std::nullopt;
    ++pos;
  }
  int running = 0;
  auto [end, ec] = std::from_chars(loadavg.data() + pos, loadavg.data() + loadavg.size(), running);
  if (ec != std::errc() || end == loadavg.data() + loadavg.size() || *end != '/') return std::nullopt;
  return running;
}

void run_event_loop(asio::io_context& io, std::chrono::microseconds spin) {
  if (spin.count() <= 0) {
    io.run();
    return;
  }
  SpareCpu spare;
  auto last = Clock::now();
  auto quiet_until = last + spin;
  for (;;) {
    // poll() runs what is ready without blocking; it returns 0 both when
    // nothing is ready and when the loop has run out of work, which
    // stopped() tells apart.
    std::size_t ran = io.poll();
    auto now = Clock::now();
    if (ran > 0) {
      quiet_until = spare.now(now) ? now + spin : now;
    } else if (io.stopped()) {
      return;
    } else if (now >= quiet_until || now - last > kPreempted) {
      if (io.run_one() == 0) return;  // blocks until something is ready
      now = Clock::now();
      quiet_until = spare.now(now) ? now + spin : now;
    }
    last = now;
  }
}

}  // namespace dbgstub

// run_event_loop: io.run() with a short poll before each block. It must
// run everything io.run() would, in order, end when the work ends, and
// block (not spin) while nothing happens.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <vector>

#include "server/plumbing/event_loop.h"

using namespace dbgstub;
using namespace std::chrono_literals;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  auto sec = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

}  // namespace

TEST_CASE("event loop: runs posted handlers and timers, then returns") {
  for (auto spin : {0us, 200us}) {
    asio::io_context io;
    std::vector<int> order;
    asio::steady_timer timer(io, 5ms);
    timer.async_wait([&](const asio::error_code&) {
      order.push_back(3);
      asio::post(io, [&] { order.push_back(4); });
    });
    asio::post(io, [&] {
      order.push_back(1);
      asio::post(io, [&] { order.push_back(2); });
    });
    run_event_loop(io, spin);
    CHECK(order == std::vector<int>{1, 2, 3, 4});
    CHECK(io.stopped());
  }
}

TEST_CASE("event loop: returns on stop() while work remains") {
  asio::io_context io;
  asio::steady_timer never(io, 1h);
  never.async_wait([](const asio::error_code&) {});
  asio::steady_timer stopper(io, 2ms);
  stopper.async_wait([&](const asio::error_code&) { io.stop(); });
  run_event_loop(io, 200us);
  CHECK(io.stopped());
}

TEST_CASE("event loop: a quiet loop blocks instead of spinning") {
  // Not a speed test: it checks that waiting 300 ms for a timer does not
  // burn those 300 ms of CPU (the spin is 200 us after each event). The
  // bound is loose, for a loaded machine.
  asio::io_context io;
  int fired = 0;
  asio::steady_timer first(io, 1ms);
  first.async_wait([&](const asio::error_code&) { ++fired; });
  asio::steady_timer later(io, 300ms);
  later.async_wait([&](const asio::error_code&) { ++fired; });
  double before = cpu_seconds();
  run_event_loop(io, 200us);
  double used = cpu_seconds() - before;
  CHECK(fired == 2);
  CHECK(used < 0.1);
}

TEST_CASE("event loop: runnable tasks from /proc/loadavg") {
  CHECK(runnable_tasks("0.50 0.40 0.30 2/87 1234\n") == 2);
  CHECK(runnable_tasks("10.05 9.91 8.00 13/181 6724") == 13);
  CHECK_FALSE(runnable_tasks("0.50 0.40 0.30").has_value());
  CHECK_FALSE(runnable_tasks("0.50 0.40 0.30 2").has_value());
  CHECK_FALSE(runnable_tasks("0.50 0.40 0.30 x/87 1").has_value());
  CHECK_FALSE(runnable_tasks("").has_value());
}

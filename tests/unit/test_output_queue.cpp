// The bounded write queue both sessions (GDB, KD) send through. The
// transport here is a stand-in that completes writes only when told, which
// is what a client that stops reading looks like from dbgstub's side.
#include <doctest/doctest.h>

#include "server/plumbing/output_queue.h"

using namespace dbgstub;

namespace {
struct HeldTransport : Transport {
  std::vector<std::string> written;
  std::vector<Handler> pending;
  void read_some(asio::mutable_buffer, Handler) override {}
  void write_all(asio::const_buffer buf, Handler h) override {
    written.emplace_back(static_cast<const char*>(buf.data()), buf.size());
    pending.push_back(std::move(h));
  }
  void close() override {}
  void defer(std::function<void()>) override {}
  void complete_one(asio::error_code ec = {}) {
    auto h = std::move(pending.front());
    pending.erase(pending.begin());
    h(ec, 0);
  }
};
}  // namespace

TEST_CASE("output queue: one write at a time, in order, then drained") {
  HeldTransport t;
  int failures = 0, drained = 0;
  OutputQueue q(t, "debugger", [&] { ++failures; }, [&] { ++drained; });
  auto owner = std::make_shared<int>(0);
  q.write("$a#61", owner);
  q.write("$b#62", owner);
  CHECK(t.written == std::vector<std::string>{"$a#61"});  // the second waits for the first
  CHECK_FALSE(q.idle());
  t.complete_one();
  CHECK(t.written == std::vector<std::string>{"$a#61", "$b#62"});
  t.complete_one();
  CHECK(q.idle());
  CHECK(drained == 1);
  CHECK(failures == 0);
}

TEST_CASE("output queue: a client that stops reading is given up past the bound") {
  HeldTransport t;
  int failures = 0;
  OutputQueue q(t, "debugger", [&] { ++failures; }, [] {});
  auto owner = std::make_shared<int>(0);
  std::string mib(1 << 20, 'x');
  for (int i = 0; i < 16; ++i) q.write(mib, owner);  // 16 MiB: at the bound, still kept
  CHECK(failures == 0);
  q.write("y", owner);
  CHECK(failures == 1);
}

TEST_CASE("output queue: a failed write fails the connection") {
  HeldTransport t;
  int failures = 0;
  OutputQueue q(t, "KD debugger", [&] { ++failures; }, [] {});
  q.write("abc", std::make_shared<int>(0));
  t.complete_one(asio::error::broken_pipe);
  CHECK(failures == 1);
  CHECK(q.idle());
}

// Regression: past the bound the queue used to free every buffer, the one
// being written included, and the write's completion then popped an empty
// deque (a double free under ASan, found by test_lab_hostile.py).
TEST_CASE("output queue: past the bound, the buffer being written lives until its write completes") {
  HeldTransport t;
  int failures = 0;
  OutputQueue q(t, "debugger", [&] { ++failures; }, [] {});
  auto owner = std::make_shared<int>(0);
  std::string mib(1 << 20, 'x');
  for (int i = 0; i < 17; ++i) q.write(mib, owner);
  CHECK(failures == 1);
  q.write("more", owner);  // after failing: dropped, no second failure
  CHECK(failures == 1);
  t.complete_one();  // the write in flight completes successfully
  CHECK(failures == 1);
  CHECK(q.idle());
  CHECK(t.pending.empty());  // nothing else is written
}

TEST_CASE("output queue: the aborted write of a closed connection fails it once") {
  HeldTransport t;
  int failures = 0;
  OutputQueue q(t, "debugger", [&] { ++failures; }, [] {});
  auto owner = std::make_shared<int>(0);
  std::string mib(1 << 20, 'x');
  for (int i = 0; i < 17; ++i) q.write(mib, owner);
  t.complete_one(asio::error::operation_aborted);
  CHECK(failures == 1);
  CHECK(q.idle());
}

// The sessions' backlog of framed requests: handled in order, stopped when
// the session closes, and given up for the loop's next turn once a slice of
// time is spent (here a handler that sleeps past the slice: one event per
// call).
#include <doctest/doctest.h>

#include <thread>

#include "server/plumbing/backlog.h"

using dbgstub::Backlog;

TEST_CASE("backlog: in order, all at once when quick") {
  Backlog<int> b;
  std::vector<int> in{1, 2, 3};
  b.add(in);
  std::vector<int> seen;
  // A slice no scheduler delay can use up: the test is of the order, not
  // of the clock.
  CHECK(b.drain([&](int& e) { seen.push_back(e); }, [] { return true; }, std::chrono::hours(1)));
  CHECK(seen == std::vector<int>{1, 2, 3});
  CHECK(b.empty());
}

TEST_CASE("backlog: stops when the session closes, keeps the rest") {
  Backlog<int> b;
  std::vector<int> in{1, 2, 3};
  b.add(in);
  std::vector<int> seen;
  bool open = true;
  CHECK_FALSE(b.drain([&](int& e) { seen.push_back(e); open = false; }, [&] { return open; }));
  CHECK(seen == std::vector<int>{1});
  CHECK_FALSE(b.empty());
}

TEST_CASE("backlog: a slow request ends the turn, the next call goes on") {
  Backlog<int> b;
  std::vector<int> in{1, 2};
  b.add(in);
  std::vector<int> seen;
  auto slow = [&](int& e) {
    seen.push_back(e);
    std::this_thread::sleep_for(Backlog<int>::kSlice + std::chrono::milliseconds(1));
  };
  CHECK_FALSE(b.drain(slow, [] { return true; }));
  CHECK(seen == std::vector<int>{1});
  CHECK(b.drain(slow, [] { return true; }));
  CHECK(seen == std::vector<int>{1, 2});
}

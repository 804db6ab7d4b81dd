// What a debugger sent, framed but not yet handled, and handled a few
// milliseconds' worth per turn of the event loop: a client that pipelines
// thousands of requests (each may be a round trip to a VM's stub) must not
// hold the one loop that every other lab target and connection shares. The
// session reads its socket again only once the backlog is empty, so such a
// client is slowed down instead of buffered. Used by the GDB and KD sessions.
#pragma once
#include <chrono>
#include <deque>
#include <utility>
#include <vector>

namespace dbgstub {

template <class Event>
class Backlog {
 public:
  static constexpr std::chrono::milliseconds kSlice{5};

  void add(std::vector<Event>& events) {
    for (auto& e : events) pending_.push_back(std::move(e));
  }

  // Hands events to `handle` while `go_on()` holds, for at most kSlice.
  // True when the backlog is empty; false when the rest must wait (the
  // caller defers another call to the loop's next turn) or go_on() failed.
  template <class Handle, class GoOn>
  bool drain(Handle&& handle, GoOn&& go_on) {
    auto until = std::chrono::steady_clock::now() + kSlice;
    while (!pending_.empty()) {
      if (!go_on() || std::chrono::steady_clock::now() >= until) return false;
      Event e = std::move(pending_.front());
      pending_.pop_front();
      handle(e);
    }
    return true;
  }

  bool empty() const { return pending_.empty(); }

 private:
  std::deque<Event> pending_;
};

}  // namespace dbgstub

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

  // Hands events to `handle` while `go_on()` holds, for at most `slice`
  // (at least one event each call, so a loop whose thread was descheduled
  // still makes progress). True when the backlog is empty; false when the
  // rest must wait (the caller defers another call to the loop's next turn)
  // or go_on() failed.
  template <class Handle, class GoOn>
  bool drain(Handle&& handle, GoOn&& go_on, std::chrono::steady_clock::duration slice = kSlice) {
    auto until = std::chrono::steady_clock::now() + slice;
    bool first = true;
    while (!pending_.empty()) {
      if (!go_on() || (!first && std::chrono::steady_clock::now() >= until)) return false;
      first = false;
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

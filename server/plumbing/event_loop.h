#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include <asio/io_context.hpp>

namespace dbgstub {

// Runs `io` until it has no work left, like io.run(), except that after a
// handler has run it keeps polling for up to `spin` before it blocks, when
// the machine has a CPU to spare.
//
// Why: a debugger's conversation with a stopped target is a chain of short
// round trips (gdb 13 makes 9 per breakpoint hit, and the next request
// usually comes within tens of microseconds), and the stop a debugger
// waits for after a resume often comes as soon. Blocking in epoll between
// them costs a sleep and a wake-up of this thread each time. Polling
// briefly answers those at once. Once the debugger and the target stay
// quiet for `spin`, the loop blocks as usual, so an idle session costs no
// CPU. It does not spin when more tasks are runnable than there are CPUs
// (it would take time from the debugger or the program being debugged:
// measured, that made a busy 2-CPU machine slower), nor when a poll shows
// this thread was preempted. A spin of zero is io.run().
void run_event_loop(asio::io_context& io, std::chrono::microseconds spin);

// The number of runnable tasks in /proc/loadavg's text ("0.50 0.40 0.30
// 2/87 1234": 2), or nothing if it doesn't parse.
std::optional<int> runnable_tasks(std::string_view loadavg);

}  // namespace dbgstub

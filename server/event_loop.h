#pragma once

#include <chrono>

#include <asio/io_context.hpp>

namespace dbgstub {

// Runs `io` until it has no work left, like io.run(), except that after a
// handler has run it keeps polling for up to `spin` before it blocks.
//
// Why: a debugger's conversation with a stopped target is a chain of short
// round trips (gdb 13 makes 9 per breakpoint hit, and the next request
// usually comes within tens of microseconds), and the stop a debugger
// waits for after a resume often comes as soon. Blocking in epoll between
// them costs a sleep and a wake-up of this thread each time, which on a
// virtual machine is as much as the work itself. Polling briefly answers
// those at once. Once the debugger and the target stay quiet for `spin`,
// the loop blocks as usual, so an idle session costs no CPU; and it blocks
// at once when the CPU is contended (a poll that took far longer than a
// poll takes means this thread was preempted), where spinning would only
// take time from the debugger or the program being debugged.
// A spin of zero is io.run().
void run_event_loop(asio::io_context& io, std::chrono::microseconds spin);

}  // namespace dbgstub

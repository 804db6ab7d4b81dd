"""^C (the 0x03 byte) in all-stop mode over the raw remote protocol: the
stop it brings is SIGINT, whatever the stopped threads were doing."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import free_port_args, inferior_pid, program  # noqa: E402

CLONE_STORM = program("clone_storm")


class Interrupt(harness.StubTestCase):

    def test_interrupt_among_threads_coming_and_going_is_sigint(self):
        # Threads start and end all the time; an interrupt's stop request
        # is often met by a clone event (or the thread is gone) instead of
        # its own stop. That stop was then reported as T00 ("Thread 1
        # stopped." in gdb.threads/manythreads.exp, which wants "received
        # signal SIGINT" as gdbserver says).
        stub = self.stub(*free_port_args(CLONE_STORM))
        pid = inferior_pid(stub)
        c = self.client(stub)
        c.handshake()
        replies = []
        for _ in range(40):
            c.send("vCont;c")
            time.sleep(0.02)
            c.send_raw(b"\x03")
            replies.append(c.read_packet(timeout=10))
        bad = [r for r in replies if not r.startswith("T02")]
        self.assertEqual(bad, [], f"{len(bad)} of {len(replies)} interrupts not SIGINT")
        c.send(f"vKill;{pid:x}")


if __name__ == "__main__":
    unittest.main()

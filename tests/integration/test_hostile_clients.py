"""Clients that misbehave at the connection level: one that connects and
says nothing must not hold the target, and the next debugger is served."""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stub, eventually, free_port_args, gdb, program, main  # noqa: E402


class SilentClient(unittest.TestCase):
    def test_silent_client_is_dropped_and_next_debugger_served(self):
        with Stub("--handshake-timeout=1", *free_port_args(program("basic"))) as stub:
            silent = socket.create_connection(("127.0.0.1", stub.port))
            silent.settimeout(5)
            start = time.time()
            self.assertEqual(silent.recv(100), b"", "the server should hang up on the silent client")
            self.assertLess(time.time() - start, 4.5)
            silent.close()
            # The log line is read from dbgstub's stderr by another thread.
            eventually(lambda: "sent no packet within 1 s" in stub.output(), timeout=5)
            self.assertIn("sent no packet within 1 s", stub.output())
            # The target is still there, untouched, for the next debugger.
            out = gdb(["break add", "continue", "p a + b"], port=stub.port, file=program("basic"))
            self.assertIn("Breakpoint 1, add (a=0, b=5)", out)
            self.assertIn("$1 = 5", out)

    def test_default_timeout_leaves_a_speaking_client_alone(self):
        with Stub(*free_port_args(program("basic"))) as stub:
            s = socket.create_connection(("127.0.0.1", stub.port))
            s.sendall(b"$?#3f")
            s.settimeout(5)
            data = b""
            while b"#" not in data:
                data += s.recv(4096)
            self.assertIn(b"$T05", data)
            s.close()


if __name__ == "__main__":
    main()

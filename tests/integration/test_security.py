"""Safe defaults: loopback unless told otherwise, with a warning in the log
when listening anywhere else; remote starts and attaches refused unless
allowed (the refusals themselves are tested in test_gdb_extended)."""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stub, free_port_args, program  # noqa: E402

BASIC = program("basic")


class Security(unittest.TestCase):
    def test_default_is_loopback_without_warning(self):
        with Stub(":0", BASIC) as stub:
            with socket.create_connection(("127.0.0.1", stub.port), timeout=5):
                pass
            self.assertNotIn("reachable from other machines", stub.output())

    def test_other_addresses_warn(self):
        with Stub("--multi", "--allow-run", "0.0.0.0:0") as stub:
            out = stub.output()
        self.assertIn("reachable from other machines", out)
        self.assertIn("start or attach to programs", out)
        self.assertIn("SSH port forwarding", out)


if __name__ == "__main__":
    unittest.main()

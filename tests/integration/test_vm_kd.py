"""--kd --vm: dbgstub's WinDbg (KD) front end in front of a real QEMU VM
(SeaBIOS halted at the reset vector, two vCPUs, as in test_vm_target.py).
No WinDbg can run here: the client is a stand-in (kd_client.py) speaking
WinDbg's side of kdcom over TCP. Checked: the first state change (the
vCPU's pc), GetContext and control space from QEMU's registers, memory,
SwitchProcessor, a single step (Continue2 with TraceFlag), and break-in
(0x62) stopping the running VM with a new state change."""
import os
import shutil
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stub, close_stub, main  # noqa: E402
import kd_client as kd  # noqa: E402
from test_vm_target import NO_QEMU, QEMU, Vm  # noqa: E402

STATUS_SINGLE_STEP = 0x80000004
KSPECIAL = 2


def state_change_fields(p):
    new_state, _level, processor, nproc = struct.unpack_from("<IHHI", p.payload, 0)
    pc, = struct.unpack_from("<Q", p.payload, 0x18)
    code, = struct.unpack_from("<I", p.payload, 0x20)
    return new_state, processor, nproc, pc, code


@unittest.skipIf(QEMU is None, NO_QEMU)
class VmKd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dbgstub-vmkd-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.vm = Vm(self.tmp, smp=2)
        self.addCleanup(self.vm.close)
        self.stub = Stub("--kd", "127.0.0.1:0", "--vm", f"gdbstub=127.0.0.1:{self.vm.gdb_port}")
        self.addCleanup(close_stub, self.stub)

    def test_session(self):
        c = kd.KdClient(self.stub.port, timeout=15)
        self.addCleanup(c.close)
        c.reset()
        sc = c.wait_state_change()
        new_state, processor, nproc, pc, code = state_change_fields(sc)
        self.assertEqual(new_state, kd.EXCEPTION_STATE_CHANGE)
        self.assertEqual(nproc, 2)
        self.assertEqual(processor, 0)
        self.assertEqual(pc, 0xFFF0)
        self.assertEqual(code, kd.STATUS_BREAKPOINT)

        r = c.request(kd.manipulate(kd.GET_VERSION))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        _major, _minor, _proto, _sec, flags = struct.unpack_from("<HHBBH", r.payload, 0x10)
        self.assertTrue(flags & 0x0001, "DBGKD_VERS_FLAG_MP with two vCPUs")

        r = c.request(kd.manipulate(kd.GET_CONTEXT))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        ctx = r.payload[kd.MANIPULATE_HEADER:]
        self.assertEqual(len(ctx), 0x4D0)
        self.assertEqual(struct.unpack_from("<Q", ctx, 0xF8)[0], 0xFFF0)  # Rip
        self.assertEqual(struct.unpack_from("<H", ctx, 0x38)[0], 0xF000)  # SegCs

        r = c.request(kd.manipulate(kd.READ_CONTROL, union=struct.pack("<QI", KSPECIAL, 0xE0)))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        cr0, = struct.unpack_from("<Q", r.payload, kd.MANIPULATE_HEADER)
        self.assertEqual(cr0, 0x60000010)  # x86 reset value

        r = c.request(kd.manipulate(kd.READ_VIRTUAL, union=struct.pack("<QI", 0xFFFF0, 5)))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        self.assertEqual(r.payload[kd.MANIPULATE_HEADER:], bytes([0xEA, 0x5B, 0xE0, 0x00, 0xF0]))

        # SwitchProcessor: answered with processor 1's state change.
        c.send_data(kd.STATE_MANIPULATE, kd.manipulate(0x3150, processor=1))
        sc = c.wait_state_change()
        self.assertEqual(state_change_fields(sc)[1], 1)
        c.send_data(kd.STATE_MANIPULATE, kd.manipulate(0x3150, processor=0))
        c.wait_state_change()

        # A single step: the far jump to f000:e05b.
        c.send_data(kd.STATE_MANIPULATE,
                    kd.manipulate(kd.CONTINUE2, union=struct.pack("<IIQQQ", 0x00010002, 1, 0, 0, 0)))
        sc = c.wait_state_change()
        _, processor, _, pc, code = state_change_fields(sc)
        self.assertEqual(code, STATUS_SINGLE_STEP)
        self.assertEqual(pc, 0xE05B)

        # Continue, then break in.
        c.send_data(kd.STATE_MANIPULATE,
                    kd.manipulate(kd.CONTINUE2, union=struct.pack("<IIQQQ", 0x00010002, 0, 0, 0, 0)))
        time.sleep(0.5)
        self.assertEqual(self.vm.status(), "running")
        c.send_raw(kd.BREAKIN)
        sc = c.wait_state_change(timeout=15)
        self.assertEqual(state_change_fields(sc)[4], kd.STATUS_BREAKPOINT)
        self.assertNotEqual(self.vm.status(), "running")
        r = c.request(kd.manipulate(kd.GET_CONTEXT))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)


if __name__ == "__main__":
    main()

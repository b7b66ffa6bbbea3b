"""A tiny real KVM virtual machine for the kvm time-sync tests (raw /dev/kvm ioctls, no QEMU).

``python tests/tinyvm.py --vcpus N --tsc-offset OFFSET`` creates one VM with N VCPUs in 16-bit real
mode, each running ``out 0x10, al; jmp back`` from guest address 0x1000 in its own thread.  Every OUT
exits to this process, which runs the VCPU again after a short sleep, so each VCPU thread produces a
steady stream of kvm_entry/kvm_exit events from a thread id we know.  VCPU i gets the TSC offset
``OFFSET - i * 1000`` (KVM_VCPU_TSC_OFFSET attribute, Linux >= 5.16; older kernels: IA32_TSC = 1e6), so
debugfs ``/sys/kernel/debug/kvm/<pid>-<fd>/vcpuI/tsc-offset`` holds a known non-zero value.

When everything runs it prints one JSON line to stdout: {"pid", "vm_dir", "vcpus": [{"vcpu", "tid",
"tsc_offset"}]} (tsc_offset as debugfs reports it), then runs until stdin is closed or SIGTERM.  On
failure it prints {"error": "..."} and exits with status 3 (KVM unusable: the caller skips with that
reason) or 1 (anything else).

Not part of the package: kshark-py reads VMs, it does not make them.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import mmap
import os
import signal
import struct
import sys
import threading
import time

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_RUN = 0xAE80
KVM_SET_REGS = 0x4090AE82
KVM_GET_SREGS = 0x8138AE83
KVM_SET_SREGS = 0x4138AE84
KVM_SET_MSRS = 0x4008AE89
KVM_SET_DEVICE_ATTR = 0x4018AEE1
KVM_HAS_DEVICE_ATTR = 0x4018AEE3
KVM_VCPU_TSC_CTRL = 0
KVM_VCPU_TSC_OFFSET = 0
MSR_IA32_TSC = 0x10
KVM_EXIT_IO = 2
KVM_EXIT_INTR = 10

MEM_SIZE = 0x10000
CODE_ADDR = 0x1000
CODE = bytes([0xE6, 0x10, 0xEB, 0xFC])  # out 0x10, al ; jmp -4


class KvmUnusable(Exception):
    """/dev/kvm is missing or refuses to create a VM: the kernel (or this machine) has no usable KVM."""


def _set_tsc_offset(vcpu: int, offset: int) -> str:
    attr = ctypes.c_int64(offset)
    dev_attr = struct.pack("IIQQ", 0, KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET, ctypes.addressof(attr))
    try:
        fcntl.ioctl(vcpu, KVM_HAS_DEVICE_ATTR, dev_attr)
        fcntl.ioctl(vcpu, KVM_SET_DEVICE_ATTR, dev_attr)
        return "KVM_VCPU_TSC_OFFSET"
    except OSError:
        pass
    # older kernels: the guest TSC starts near 0, i.e. offset ~ -(host TSC): non-zero too (debugfs says which)
    msrs = struct.pack("II", 1, 0) + struct.pack("IIQ", MSR_IA32_TSC, 0, 1_000_000)
    fcntl.ioctl(vcpu, KVM_SET_MSRS, msrs)
    return "IA32_TSC"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--tsc-offset", type=int, default=-5_000_000_000)
    ap.add_argument("--interval", type=float, default=0.0005, help="seconds between two runs of a VCPU")
    a = ap.parse_args()
    try:
        vm = create(a.vcpus, a.tsc_offset)
    except KvmUnusable as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 3
    except OSError as e:
        print(json.dumps({"error": f"tiny VM setup failed: {e}"}), flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tids: dict[int, int] = {}
    errors: list[str] = []
    ready = threading.Barrier(a.vcpus + 1)

    def run(i: int) -> None:
        tids[i] = threading.get_native_id()
        fd, run_area = vm["vcpus"][i]
        first = True
        while not stop.is_set():
            try:
                fcntl.ioctl(fd, KVM_RUN, 0)
            except InterruptedError:
                continue
            except OSError as e:
                errors.append(f"vcpu {i}: KVM_RUN: {e}")
                break
            reason = struct.unpack_from("I", run_area, 8)[0]
            if reason not in (KVM_EXIT_IO, KVM_EXIT_INTR):
                errors.append(f"vcpu {i}: unexpected exit reason {reason}")
                break
            if first:
                first = False
                ready.wait()
            time.sleep(a.interval)
        if first:
            ready.abort()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(a.vcpus)]
    for t in threads:
        t.start()
    try:
        ready.wait(10)
    except threading.BrokenBarrierError:
        print(json.dumps({"error": "a VCPU did not run: " + "; ".join(errors)}), flush=True)
        return 1
    vm_dir = f"/sys/kernel/debug/kvm/{os.getpid()}-{vm['fd']}"
    vcpus = []
    for i in range(a.vcpus):
        try:
            with open(f"{vm_dir}/vcpu{i}/tsc-offset") as f:
                off = int(f.read().strip())
        except OSError:
            off = None
        vcpus.append({"vcpu": i, "tid": tids[i], "tsc_offset": off})
    print(json.dumps({"pid": os.getpid(), "vm_dir": vm_dir, "method": vm["method"], "vcpus": vcpus}), flush=True)
    watcher = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
    watcher.start()
    while not stop.wait(0.2):
        if errors:
            print(json.dumps({"error": "; ".join(errors)}), file=sys.stderr, flush=True)
            return 1
    for t in threads:
        t.join(2)
    return 0


def create(n: int, tsc_offset: int) -> dict:
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise KvmUnusable(f"cannot open /dev/kvm: {e}") from e
    if fcntl.ioctl(kvm, KVM_GET_API_VERSION) != 12:
        raise KvmUnusable("unexpected KVM API version")
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    except OSError as e:
        raise KvmUnusable(f"KVM_CREATE_VM failed: {e}") from e
    mem = mmap.mmap(-1, MEM_SIZE)
    mem[CODE_ADDR:CODE_ADDR + len(CODE)] = CODE
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, struct.pack("IIQQQ", 0, 0, 0, MEM_SIZE, addr))
    size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE)
    vcpus = []
    method = ""
    for i in range(n):
        fd = fcntl.ioctl(vm, KVM_CREATE_VCPU, i)
        run_area = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        sregs = bytearray(312)
        fcntl.ioctl(fd, KVM_GET_SREGS, sregs)
        struct.pack_into("QIH", sregs, 0, 0, 0xFFFF, 0)  # cs: base 0, limit 64 KiB, selector 0
        fcntl.ioctl(fd, KVM_SET_SREGS, bytes(sregs))
        regs = bytearray(144)
        struct.pack_into("Q", regs, 16 * 8, CODE_ADDR)  # rip
        struct.pack_into("Q", regs, 17 * 8, 0x2)  # rflags
        fcntl.ioctl(fd, KVM_SET_REGS, bytes(regs))
        method = _set_tsc_offset(fd, tsc_offset - i * 1000)
        vcpus.append((fd, run_area))
    return {"kvm": kvm, "fd": vm, "mem": mem, "vcpus": vcpus, "method": method}


if __name__ == "__main__":
    sys.exit(main())

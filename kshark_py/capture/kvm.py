"""What a KVM host knows about its guests, as trace-cmd 3.1.6 reads it: TSC offsets, QEMU's process, VCPU threads.

Facts (shared/spec/host-guest-timesync.md §6-7; trace-cmd `trace-timesync-kvm.c`, `trace-vm.c`,
`trace-tsync.c`, `trace-record.c` ``get_tsc_nsec()``/``set_tsync_params()``):

* debugfs ``kvm/<qemu-pid>-<vm-fd>/vcpu<N>/tsc-offset`` (and, with TSC scaling,
  ``tsc-scaling-ratio`` + ``tsc-scaling-ratio-frac-bits``): KVM's guest TSC = host TSC (x ratio >> frac)
  + offset, so for an unscaled guest host_tsc = guest_tsc - tsc_offset.  The "kvm" time-sync protocol
  just ships these numbers to the host's TIME_SHIFT option; it needs the guest's process id.
* A guest reached by vsock CID: its process is found by tracing what a connect() to the CID wakes up
  until a task does ``kvm_exit`` (``find_pid_by_cid()``).  Over TCP there is no CID: the user names the
  process (``record -A NAME@HOST:PORT --guest-pid PID``).
* VCPU -> host thread: during the first time-sync round, ``kvm:kvm_entry`` is recorded for the guest
  process's threads only (``set_event_pid``) and each ``vcpu_id`` is matched to the thread that entered it.
* TSC -> ns: the kernel's ``time_mult``/``time_shift`` from a perf event's mmap page, equal on every CPU;
  with them (and kvm possible, and no -C) trace-cmd records host and guests with ``x86-tsc`` and writes
  TSC2NSEC.  The kernel fills them only when user-space TSC time is exact (native sched_clock, stable
  TSC); in a VM with a paravirtual clock they are 0 and trace-cmd keeps the current clock.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import platform
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..loaders.cnum import strtoll  # C strtoll(text, NULL, 0), as trace-cmd parses
from ..loaders.text import trace_clocks
from .rawevents import TempInstance
from .tracefs import RecordError, find_tracefs

log = logging.getLogger("kshark_py.capture")

TSC_CLOCK = "x86-tsc"
KVM_SCALING_AMD_DEFAULT = 1 << 32
KVM_SCALING_INTEL_DEFAULT = 1 << 48
OFFSET_FILE = "tsc-offset"
SCALING_FILE = "tsc-scaling-ratio"
FRACTION_FILE = "tsc-scaling-ratio-frac-bits"
DEBUGFS_DEFAULT = Path("/sys/kernel/debug")
LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)
TRACE_FLAG_HARDIRQ = 0x08
TRACE_FLAG_SOFTIRQ = 0x10
VMADDR_PORT_ANY = 0xFFFFFFFF


class KvmError(Exception):
    """The guest's KVM files cannot be used (missing VM directory, wrong VCPU count, unreadable offset)."""


# --- numbers as trace-cmd parses them -------------------------------------------------------------------
def read_ll(path: Path | None) -> int | None:
    """``read_ll_from_file()``: up to 32 bytes, parsed with strtoll; None when unreadable or empty."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        data = os.read(fd, 32)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not data:
        return None
    return strtoll(data.split(b"\0")[0].decode("ascii", "replace"))


# --- debugfs --------------------------------------------------------------------------------------------
def _mounted(fstype: str) -> Path | None:
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == fstype:
                return Path(parts[1].replace("\\040", " "))
    return None


def debugfs_dir(mount: bool = True) -> Path | None:
    """Where debugfs is mounted; mounts it at /sys/kernel/debug when it is not (as libtracefs does)."""
    found = _mounted("debugfs")
    if found is not None or not mount:
        return found
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"debugfs", str(DEBUGFS_DEFAULT).encode(), b"debugfs", 0, None) != 0:
            log.info("cannot mount debugfs at %s: %s", DEBUGFS_DEFAULT, os.strerror(ctypes.get_errno()))
            return None
    except (OSError, AttributeError):
        return None
    return DEBUGFS_DEFAULT


def kvm_debug_dir() -> Path | None:
    """``<debugfs>/kvm`` if it exists (KVM loaded); module-level so tests can point it elsewhere."""
    d = debugfs_dir()
    if d is None or not (d / "kvm").is_dir():
        return None
    return d / "kvm"


def _vcpu_dirs(vm_dir: Path) -> list[Path]:
    """``vcpu*`` subdirectories in directory order (what readdir() gives trace-cmd)."""
    with os.scandir(vm_dir) as it:
        return [Path(e.path) for e in it if e.is_dir(follow_symlinks=False) and e.name.startswith("vcpu")]


def _scaling_consistent(vcpu_dir: Path) -> bool:
    """Both scaling files or neither (``kvm_scaling_check_vm_cpu()``)."""
    return (vcpu_dir / SCALING_FILE).exists() == (vcpu_dir / FRACTION_FILE).exists()


def host_supported(kvm_dir: Path | None = None) -> bool:
    """trace-cmd's host-role check: every VM directory has VCPU dirs, each with consistent scaling files.

    (trace-cmd registers "kvm" for the host role only then; with no VM running it is not offered.)
    """
    kvm_dir = kvm_dir if kvm_dir is not None else kvm_debug_dir()
    if kvm_dir is None:
        return False
    vms = 0
    try:
        with os.scandir(kvm_dir) as it:
            entries = [e for e in it if e.is_dir(follow_symlinks=False) and e.name[:1].isdigit()]
        for e in entries:
            vcpus = _vcpu_dirs(Path(e.path))
            if not vcpus or not all(_scaling_consistent(v) for v in vcpus):
                return False
            vms += 1
    except OSError:
        return False
    return vms > 0


def vm_dir(pid: int, kvm_dir: Path | None = None) -> Path | None:
    """The first ``<pid>-*`` directory (one VM per QEMU process, as trace-cmd assumes)."""
    kvm_dir = kvm_dir if kvm_dir is not None else kvm_debug_dir()
    if kvm_dir is None:
        return None
    prefix = f"{pid}-"
    with contextlib.suppress(OSError), os.scandir(kvm_dir) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False) and e.name.startswith(prefix):
                return Path(e.path)
    return None


def _vcpu_number(d: Path) -> int:
    """``strtol(name + 4, NULL, 10)``."""
    digits = ""
    for ch in d.name[4:]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else 0


def vcpu_numbers(pid: int, vcpus: int, kvm_dir: Path | None = None) -> list[int]:
    """The VM's VCPU numbers, sorted; exactly ``vcpus`` of them (else KvmError)."""
    return sorted(_vcpu_number(v) for v in _guest_vcpu_dirs(pid, vcpus, kvm_dir))


def _guest_vcpu_dirs(pid: int, vcpus: int, kvm_dir: Path | None, say_where: bool = False) -> list[Path]:
    """The VM's ``vcpu*`` directories; KvmError unless there are exactly ``vcpus``."""
    d = vm_dir(pid, kvm_dir)
    if d is None:
        where = f" in {kvm_dir or kvm_debug_dir()}" if say_where else ""
        raise KvmError(f"no KVM debugfs directory for process {pid}{where}")
    dirs = _vcpu_dirs(d)
    if len(dirs) != vcpus:
        raise KvmError(f"{d} has {len(dirs)} VCPU directories, the guest reports {vcpus} CPUs")
    return dirs


@dataclass(frozen=True)
class VcpuClockFiles:
    vcpu: int
    offset: Path
    scaling: Path | None = None
    fraction: Path | None = None


def open_clock_files(pid: int, vcpus: int, kvm_dir: Path | None = None) -> list[VcpuClockFiles]:
    """``kvm_open_debug_files()``: one entry per VCPU sorted by number; KvmError if anything is missing."""
    out = []
    for v in _guest_vcpu_dirs(pid, vcpus, kvm_dir, say_where=True):
        names = {e.name for e in os.scandir(v) if not e.is_dir(follow_symlinks=False)}
        if OFFSET_FILE not in names:
            raise KvmError(f"{v} has no {OFFSET_FILE}")
        out.append(VcpuClockFiles(_vcpu_number(v), v / OFFSET_FILE,
                                  v / SCALING_FILE if SCALING_FILE in names else None,
                                  v / FRACTION_FILE if FRACTION_FILE in names else None))
    return sorted(out, key=lambda f: f.vcpu)


def read_clock(files: VcpuClockFiles) -> tuple[int, int, int]:
    """(tsc offset, scaling, fraction bits) as ``kvm_clock_host()`` reads them.

    A hardware-default ratio (AMD 1<<32, Intel 1<<48) means "not scaled" and becomes 1; the fraction
    bits are read only for a ratio other than 1; unreadable scaling files leave 1 / 0.
    """
    offset = read_ll(files.offset)
    if offset is None:
        raise KvmError(f"cannot read {files.offset}")
    scaling = 1
    if files.scaling is not None:
        v = read_ll(files.scaling)
        if v is not None:
            scaling = v
        if scaling in (KVM_SCALING_AMD_DEFAULT, KVM_SCALING_INTEL_DEFAULT):
            scaling = 1
    frac = 0
    if files.fraction is not None and scaling != 1:
        v = read_ll(files.fraction)
        if v is not None:
            frac = v
    return offset, scaling, frac


def kvm_unavailable_reason(pid: int | None, clock: str | None, kvm_dir: Path | None = None) -> str | None:
    """Why this host cannot run "kvm" time sync with the guest process ``pid`` (None: it can)."""
    if clock != TSC_CLOCK:
        return f"the session clock is {clock or 'the default'}, kvm needs {TSC_CLOCK}"
    if pid is None:
        return "the guest's process is unknown (vsock CID not found, or TCP/FIFO guest without --guest-pid)"
    kvm_dir = kvm_dir if kvm_dir is not None else kvm_debug_dir()
    if kvm_dir is None:
        return "debugfs has no kvm directory (KVM not loaded)"
    d = vm_dir(pid, kvm_dir)
    if d is None:
        return f"no {kvm_dir}/{pid}-* directory (process {pid} runs no KVM guest)"
    dirs = _vcpu_dirs(d)
    if not dirs:
        return f"{d} has no VCPU directories"
    if not all(_scaling_consistent(v) and (v / OFFSET_FILE).exists() for v in dirs):
        return f"{d}: a VCPU lacks {OFFSET_FILE} or has only one of the TSC scaling files"
    return None


# --- the guest's process and threads --------------------------------------------------------------------
def guest_tasks(pid: int) -> list[int]:
    """The thread ids of process ``pid`` (``find_tasks()``: /proc/PID/task)."""
    try:
        return sorted(int(n) for n in os.listdir(f"/proc/{pid}/task") if n.isdigit())
    except OSError:
        return []


def tgid(pid: int) -> int | None:
    """The process a thread belongs to (``Tgid:`` of /proc/PID/status)."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Tgid:"):
                return strtoll(line.split(":", 1)[1])
    return None


def pid_from_wakeups(events: list[tuple[str, int, int, int]], start: int) -> int | None:
    """Follow wake-ups from ``start`` to the first task that does kvm_exit (``trace-vm.c`` callback()).

    ``events`` are (kind "waking"/"kvm_exit", common_pid, flags, woken pid) in time order; events in
    interrupt context are ignored, a wake-up by a task of the chain adds the woken task to it.
    """
    chain = {start}
    for kind, pid, flags, woken in events:
        if flags & (TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ) or pid not in chain:
            continue
        if kind == "kvm_exit":
            return pid
        if kind == "waking":
            chain.add(woken)
    return None


def find_pid_by_cid(cid: int, timeout: float = 1.0) -> int | None:
    """The process running the guest with vsock CID ``cid``, or None (``find_pid_by_cid()``).

    Traces sched_waking and kvm_exit while connecting to the CID (any port: the connection itself does
    not matter), follows the wake-up chain from us to a thread entering/leaving the guest, and returns
    that thread's process.
    """
    try:
        inst = TempInstance("vsock-pid")
    except OSError as e:
        log.info("cannot look for the process of CID %d: %s", cid, e)
        return None
    try:
        waking = inst.event_format("sched", "sched_waking")
        kexit = inst.event_format("kvm", "kvm_exit")
        pid_f = waking.field("pid")
        cpid = waking.field("common_pid")
        cflags = waking.field("common_flags")
        if pid_f is None or cpid is None or cflags is None:
            return None
        inst.write("events/sched/sched_waking/enable", "1")
        inst.write("events/kvm/kvm_exit/enable", "1")
        inst.write("tracing_on", "1")
        with contextlib.suppress(OSError, AttributeError):
            s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            try:
                s.settimeout(timeout)
                with contextlib.suppress(OSError):
                    s.connect((cid, VMADDR_PORT_ANY))
            finally:
                s.close()
        inst.write("tracing_on", "0")
        inst.write("events/enable", "0")
        events = []
        for r in inst.records():
            kind = "waking" if r.type == waking.id else "kvm_exit" if r.type == kexit.id else None
            if kind is None:
                continue
            woken = r.u(pid_f.offset, 4, True) if kind == "waking" else 0
            events.append((kind, r.u(cpid.offset, 4, True), r.u(cflags.offset, 1), woken))
        found = pid_from_wakeups(events, os.getpid())
        return tgid(found) if found else None
    except (OSError, ValueError) as e:
        log.info("cannot look for the process of CID %d: %s", cid, e)
        return None
    finally:
        inst.close()


def map_vcpus(entries: Iterable[tuple[int, int]], numbers: list[int], tasks: Iterable[int]) -> list[int]:
    """``map_vcpus()``: (thread, vcpu_id) of kvm_entry events in time order -> thread per VCPU index.

    ``numbers`` are the VM's sorted VCPU numbers (index i of the result is VCPU ``numbers[i]``); only the
    guest's ``tasks`` count, the first entry of a VCPU wins; -1 where none was seen.
    """
    index = {n: i for i, n in enumerate(numbers)}
    tasks = set(tasks)
    out = [-1] * len(numbers)
    for pid, vcpu in entries:
        i = index.get(vcpu)
        if pid in tasks and i is not None and out[i] < 0:
            out[i] = pid
    return out


def debugfs_vcpu_pids(pid: int, numbers: list[int], kvm_dir: Path | None = None) -> dict[int, int]:
    """VCPU number -> thread from debugfs ``vcpuN/pid`` (the thread that last ran it; 0 = never run)."""
    d = vm_dir(pid, kvm_dir)
    out: dict[int, int] = {}
    if d is None:
        return out
    for n in numbers:
        v = read_ll(d / f"vcpu{n}" / "pid")
        if v:
            out[n] = v
    return out


class VcpuMapper:
    """``start_mapping_vcpus()``/``stop_mapping_vcpus()``: which guest thread runs which VCPU.

    :meth:`start` records ``kvm:kvm_entry`` of the guest's threads in an instance of ours; :meth:`stop`
    matches ``vcpu_id`` (a VCPU number, looked up among the VM's sorted debugfs VCPU numbers) to the
    entering thread.  The map is used only when every VCPU was seen (as trace-cmd).

    Beyond trace-cmd: a VCPU that did not enter the guest in that window (idle, or a KVM that emulates
    without kvm_entry events) is taken from debugfs ``vcpuN/pid`` when that names one of the guest's
    threads.  :attr:`sources` says which way each VCPU was found.
    """

    def __init__(self, pid: int, tasks: list[int]) -> None:
        self.pid = pid
        self.tasks = tasks
        self.inst: TempInstance | None = None
        self.error: str | None = None
        self.sources: list[str] = []

    def start(self) -> bool:
        if not self.tasks:
            self.error = f"process {self.pid} has no threads"
            return False
        try:
            self.inst = TempInstance("map-vcpus")
            self.inst.write("set_event_pid", "".join(f"{t} " for t in self.tasks))
            self.inst.write("events/kvm/kvm_entry/enable", "1")
        except OSError as e:
            self.error = f"cannot trace kvm_entry: {e}"
            self.close()
            return False
        return True

    def stop(self, vcpus: int) -> list[int] | None:
        """Host thread per guest VCPU index (the order of the guest's CPUs), or None if not all were seen."""
        inst = self.inst
        if inst is None:
            return None
        try:
            try:
                numbers = vcpu_numbers(self.pid, vcpus)
            except KvmError as e:
                self.error = str(e)
                return None
            inst.write("events/kvm/kvm_entry/enable", "0")
            fmt = inst.event_format("kvm", "kvm_entry")
            vf, pf = fmt.field("vcpu_id"), fmt.field("common_pid")
            if vf is None or pf is None:
                self.error = "kvm_entry has no vcpu_id"
                return None
            entries = ((r.u(pf.offset, 4, True), r.u(vf.offset, vf.size)) for r in inst.records() if r.type == fmt.id)
            out = map_vcpus(entries, numbers, self.tasks)
            self.sources = ["kvm_entry" if p >= 0 else "" for p in out]
            index = {n: i for i, n in enumerate(numbers)}
            tasks = set(self.tasks)
            missing = [numbers[i] for i, p in enumerate(out) if p < 0]
            if missing:
                for n, tid in debugfs_vcpu_pids(self.pid, missing).items():
                    if tid in tasks:
                        out[index[n]] = tid
                        self.sources[index[n]] = "debugfs"
            if min(out, default=-1) < 0:
                self.error = (f"no kvm_entry (nor debugfs pid) for VCPU(s) "
                              f"{[numbers[i] for i, p in enumerate(out) if p < 0]}")
                return None
            return out
        except OSError as e:
            self.error = str(e)
            return None
        finally:
            self.close()

    def close(self) -> None:
        if self.inst is not None:
            self.inst.close()
            self.inst = None


# --- TSC -> nanoseconds ----------------------------------------------------------------------------------
_PERF_EVENT_OPEN = {"x86_64": 298, "i386": 336, "i686": 336}
_PERF_TYPE_SOFTWARE = 1
_PERF_COUNT_SW_CPU_CLOCK = 0
_PERF_SAMPLE_CPU = 1 << 7
_PERF_FORMAT = (1 << 0) | (1 << 1) | (1 << 2)  # TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | ID
# disabled, inherit, exclude_kernel, mmap, comm, freq, task, precise_ip=1, sample_id_all
_PERF_FLAGS = sum(1 << b for b in (0, 1, 5, 8, 9, 10, 13, 15, 18))
_PERF_ATTR_SIZE = 128
_MMAP_TIME_SHIFT = 50  # struct perf_event_mmap_page: u16 time_shift at 50, u32 time_mult at 52


def _perf_time_conversion(cpu: int) -> tuple[int, int] | None:
    """(time_mult, time_shift) of a perf event's mmap page on ``cpu`` (``trace_perf_open()`` defaults)."""
    nr = _PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        return None
    attr = struct.pack("IIQQQQQ", _PERF_TYPE_SOFTWARE, _PERF_ATTR_SIZE, _PERF_COUNT_SW_CPU_CLOCK, 1000,
                       _PERF_SAMPLE_CPU, _PERF_FORMAT, _PERF_FLAGS).ljust(_PERF_ATTR_SIZE, b"\0")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_char_p(attr), ctypes.c_int(os.getpid()), ctypes.c_int(cpu),
                      ctypes.c_int(-1), ctypes.c_ulong(0))
    if fd < 0:
        return None
    try:
        m = mmap.mmap(fd, 2 * mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        os.close(fd)
        return None
    try:
        shift, mult = struct.unpack_from("=HI", m, _MMAP_TIME_SHIFT)
    finally:
        m.close()
        os.close(fd)
    return mult, shift


@lru_cache(maxsize=1)
def tsc2nsec() -> tuple[int, int] | None:
    """(mult, shift) to turn TSC ticks into ns (``get_tsc_nsec()``), or None.

    The same pair must be reported on every CPU and not be all zero (the kernel leaves both 0 when
    user-space cannot convert TSC, e.g. under a paravirtual sched_clock).
    """
    first = _perf_time_conversion(0)
    if first is None:
        return None
    for cpu in range(1, os.cpu_count() or 1):
        other = _perf_time_conversion(cpu)
        if other != first:
            if other is not None:
                log.warning("different TSC multiplier and shift on CPU %d: %s instead of %s", cpu, other, first)
            return None
    if first == (0, 0):
        return None
    return first


def clock_supported(clock: str, tracefs: Path | None = None) -> bool:
    """Whether the kernel offers ``clock`` in trace_clock."""
    try:
        text = ((tracefs or find_tracefs()) / "trace_clock").read_text()
    except (OSError, RecordError):
        return False
    return clock in trace_clocks(text)[0]

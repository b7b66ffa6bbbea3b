"""Host/guest time synchronisation: trace-cmd 3.1.6's "ptp" protocol in both roles, and its framing.

Why a re-implementation and not "close enough": trace-cmd's agent and host are our peers, so every
message, every order and every computation must be the one trace-cmd makes (shared/spec/
host-guest-timesync.md §4-§5, `trace-timesync.c`, `trace-timesync-ptp.c`):

* framing (:class:`HostTimeSync`, :class:`GuestTimeSync`): the host sends TIME_SYNC "none"/PROBE(vCPU) and
  runs one protocol exchange per guest vCPU, a first round before recording starts, then one every
  ``--tsync-interval`` ms (0: none in between), a last round when recording stops, then "none"/STOP.
  The guest pins its sync thread to that vCPU for the exchange.
* "ptp": the **guest is the server**.  START(series, flags) echoed; 339 PROBE(count) echoed, the guest
  timestamping each send ('s') and return ('r'), the host each receive ('r'); END; the host sends its
  timestamps (PROBES); the guest picks the probe with the fastest round trip (FASTEST_RESPONSE) and
  sends OFFSET(ts = mid-point in guest time, offset = host - guest).
* timestamps (flag USE_MARKER): a 20-byte marker written to ``trace_marker_raw`` of a tracefs instance
  with the session clock, whose ``ftrace:raw_data`` event timestamp is read back from the instance's
  raw pages, so offsets are in trace-clock units; without the flag, ``CLOCK_MONOTONIC_RAW``.

* "kvm" (accuracy 0, so a guest offered both picks it): per vCPU the guest writes the marker
  ``"kvm sync event\0"`` to ``trace_marker_raw`` of an instance on ``x86-tsc`` and sends REQUEST(ts of
  that event); the host reads the vCPU's debugfs ``tsc-offset`` (and TSC scaling files, see
  :mod:`kvm`) and answers RESPONSE(ts, -tsc_offset, scaling, frac), which is also its sample.  Only a
  host that knows the guest's process (and its KVM debugfs directory) and records with x86-tsc offers it.

Why TCP_QUICKACK on the sync socket: trace-cmd writes a message header and its payload with two
``write()`` calls and does not disable Nagle, so the payload waits for the ACK of the header, which a
receiver's delayed ACK holds for up to 40 ms: ~50 s per vCPU and round at 339 probes.  Acknowledging at
once makes a sync round take milliseconds with either peer (this is why trace-cmd with its own agent
"never ends" on loopback: it does, after minutes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..loaders.cnum import s64
from ..loaders.layout import TSYNC_FLAG_INTERPOLATE
from . import kvm
from . import msg as M
from . import tsync_msg as T
from .rawevents import TempInstance
from .transport import Channel, PeerError

log = logging.getLogger("kshark_py.capture")

SUPPORTED_PROTOCOLS: tuple[str, ...] = (T.PROTO_KVM, T.PROTO_PTP)
"""Everything we implement, in trace-cmd's registration-list order (TRACE_REQ lists kvm first).

Which ones a session offers depends on the guest: see :meth:`HostSession`'s protocol choice and
:func:`guest_protocols`."""
PROTOCOL_FLAGS = {T.PROTO_PTP: TSYNC_FLAG_INTERPOLATE, T.PROTO_KVM: 0}
"""TIME_SHIFT flags per protocol, as registered by trace-cmd (ptp interpolates, kvm steps)."""
PROTOCOL_ACCURACY = {T.PROTO_KVM: 0, T.PROTO_PTP: T.PTP_ACCURACY}
"""Lower is better: a guest picks the offered protocol with the lowest value (``tsync_proto_select()``)."""
KVM_MARKER = b"kvm sync event\0"
PTP_FLAGS = T.PTP_FLAG_FASTEST_RESPONSE | T.PTP_FLAG_USE_MARKER
SYNC_TIMEOUT = 10.0
"""Seconds to wait for one time-sync message (a round is ~700 messages; a stalled peer ends it)."""
FIRST_ROUND_TIMEOUT = 60.0

_MARKER = struct.Struct("=iiiii")  # series_id, local_id, remote_id, count, packet_id (native, as trace-cmd)


def guest_protocols() -> tuple[str, ...]:
    """What this kernel can do as a guest: ptp always, kvm when the ``x86-tsc`` trace clock exists."""
    return (T.PROTO_KVM, T.PROTO_PTP) if kvm.clock_supported(kvm.TSC_CLOCK) else (T.PROTO_PTP,)


def select_protocol(offered: Sequence[str] | None, clock: str | None = None,
                    supported: Sequence[str] | None = None) -> str | None:
    """The guest's choice among the host's protocols: the lowest accuracy value among those we support.

    kvm timestamps are TSC ticks, so kvm is only taken when the host asked for the ``x86-tsc`` clock
    (or for none); ``supported`` defaults to :func:`guest_protocols`.
    """
    if not offered:
        return None
    sup = guest_protocols() if supported is None else tuple(supported)
    best = None
    for name in offered:
        if name not in sup or name not in PROTOCOL_ACCURACY:
            continue
        if name == T.PROTO_KVM and clock not in (None, kvm.TSC_CLOCK):
            continue
        if best is None or PROTOCOL_ACCURACY[name] < PROTOCOL_ACCURACY[best]:
            best = name
    return best


def quickack(sock: socket.socket) -> None:
    """Acknowledge received data at once (re-armed after every receive; see the module docstring)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def prepare_socket(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    quickack(sock)


class SyncChannel(Channel):
    """A message channel that acknowledges every receive immediately (trace-cmd peers split writes)."""

    def _before_recv(self) -> None:
        quickack(self.sock)

    def recv_tsync(self) -> M.TimeSync:
        m = self.recv()
        if not isinstance(m, M.TimeSync):
            raise PeerError(f"{self.name}: expected TIME_SYNC, got {type(m).__name__}")
        return m


# --- timestamps ---------------------------------------------------------------------------------------
class MarkerClock:
    """Trace-clock timestamps of markers, from a private tracefs instance (trace-cmd's ``clock_synch-N``).

    Each side uses its own instance, so a host and a guest role on one kernel never see each other's
    markers.  If the instance cannot be made (no tracefs, not root), :attr:`available` is False and the
    caller falls back to ``CLOCK_MONOTONIC_RAW`` as trace-cmd does without USE_MARKER.
    """

    def __init__(self, clock: str | None, tracefs: Path | None = None) -> None:
        self.available = False
        self.error = ""
        self.path: Path | None = None
        self._inst: TempInstance | None = None
        self._marker_fd = -1
        try:
            inst = self._inst = TempInstance("sync", tracefs)
            self.path = inst.path
            fmt = inst.event_format("ftrace", "raw_data")
            self.raw_id = fmt.id
            id_field = fmt.field("id")
            if id_field is None:
                raise ValueError("ftrace:raw_data has no id field")
            self.id_offset = id_field.offset
            if clock:
                inst.write("trace_clock", clock)
            self._marker_fd = os.open(inst.path / "trace_marker_raw", os.O_WRONLY)
            inst.open_pipes()
            self.available = True
        except (OSError, ValueError) as e:
            self.error = str(e)
            log.info("time sync: no trace markers (%s): using CLOCK_MONOTONIC_RAW", e)
            self.close()

    def clear(self) -> None:
        """Drop old markers (trace-cmd writes the instance's ``trace`` file at each series)."""
        self._raw_data()

    def mark(self, series: int, count: int, packet: str) -> None:
        os.write(self._marker_fd, _MARKER.pack(series, 0, 0, count, ord(packet)))

    def _raw_data(self) -> list[tuple[int, bytes]]:
        """(timestamp, record) of the ftrace:raw_data events written since the last read."""
        assert self._inst is not None
        return [(r.ts, r.data) for r in self._inst.records() if r.type == self.raw_id]

    def collect(self, series: int) -> dict[tuple[str, int], int]:
        """(packet 's'/'r', count) -> timestamp of this series' markers written so far."""
        out: dict[tuple[str, int], int] = {}
        for ts, rec in self._raw_data():
            if len(rec) < self.id_offset + _MARKER.size:
                continue
            s, lid, rid, count, pid = _MARKER.unpack_from(rec, self.id_offset)
            if s == series and lid == 0 and rid == 0 and count and pid in (ord("s"), ord("r")):
                out[(chr(pid), count)] = ts
        return out

    def stamp(self, payload: bytes) -> int:
        """Write ``payload`` to trace_marker_raw now; the timestamp of its raw_data event (0 if not found).

        The instance is emptied first, so the first matching event is this one (``kvm_marker_find()``:
        the payload starts at the event's ``id`` field).
        """
        self.clear()
        os.write(self._marker_fd, payload)
        end = self.id_offset + len(payload)
        for ts, rec in self._raw_data():
            if len(rec) >= end and rec[self.id_offset:end] == payload:
                return ts
        return 0

    def close(self) -> None:
        if self._marker_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._marker_fd)
            self._marker_fd = -1
        if self._inst is not None:
            self._inst.close()
            self._inst = None
        self.available = False


class _NoClock:
    """The host's kvm role reads debugfs, not trace markers."""

    available = False
    error = "not used"

    def close(self) -> None:
        pass


_NO_CLOCK: MarkerClock = _NoClock()  # type: ignore[assignment]


def _monotonic_raw() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)


# --- protocol messages -----------------------------------------------------------------------------------
_P = TypeVar("_P")


def _check(m: M.TimeSync, proto: str, command: int, what: str) -> None:
    """PeerError("<proto>: expected <what>, ...") unless ``m`` is a ``proto``/``command`` message."""
    if m.proto != proto or m.command != command:
        raise PeerError(f"{proto}: expected {what}, got {m.proto}/{m.command}")


def _decode(m: M.TimeSync, proto: str, command: int, what: str, kind: type[_P]) -> _P:
    """``m`` (checked by :func:`_check`) decoded; it must be a ``kind``."""
    _check(m, proto, command, what)
    try:
        p = T.decode_tsync(m)
    except M.PeerProtocolError as e:
        raise PeerError(f"{proto}: {e}") from e
    assert isinstance(p, kind)
    return p


def _expect(ch: SyncChannel, proto: str, command: int, what: str, kind: type[_P]) -> _P:
    """The next message, which must be ``proto``/``command`` (see :func:`_decode`)."""
    return _decode(ch.recv_tsync(), proto, command, what, kind)


# --- ptp: the offset computation ------------------------------------------------------------------------
def ptp_fastest(server: Sequence[tuple[int, int]], server_count: int, client: Sequence[tuple[int, int]],
                client_count: int) -> tuple[int, int, int]:
    """``ptp_calc_offset_fastest()``: (offset, ts, bad probes); (0, 0, n) when no probe is usable.

    ``server`` is the guest's 678-slot table ('r' at count-1, 's' at 339+count-1) with ``server_count``
    stored markers; like trace-cmd, the send samples are read from slot ``server_count // 2`` on.
    """
    half = server_count // 2
    n = min(half, client_count)
    if n <= 0:
        return 0, 0, 0
    sv = np.array(server, dtype=np.int64).reshape(-1, 2)
    cl = np.array(client, dtype=np.int64).reshape(-1, 2)
    r_ts, r_id = sv[:n, 0], sv[:n, 1]
    s_ts, s_id = sv[half:half + n, 0], sv[half:half + n, 1]
    c_ts, c_id = cl[:n, 0], cl[:n, 1]
    good = (r_ts != 0) & (s_ts != 0) & (c_ts != 0) & (r_id == s_id) & (r_id == c_id)
    bad = int(n - good.sum())
    if not good.any():
        return 0, 0, bad
    idx = np.flatnonzero(good)
    # C: (send + return) / 2 truncates toward zero; timestamps are positive, so floor division equals it
    mid = (s_ts[idx] + r_ts[idx]) // 2
    delta = r_ts[idx] - s_ts[idx]
    best = int(np.argmin(delta))  # first minimum, as the strict '>' of the C loop
    return int(c_ts[idx][best] - mid[best]), int(mid[best]), bad


@dataclass
class PtpState:
    """Per-connection protocol state (trace-cmd keeps the series id in its ptp context)."""

    clock: MarkerClock
    series: int = 0
    flags: int = PTP_FLAGS
    stats: list[tuple[int, int, int]] = field(default_factory=list)  # (series, offset, bad probes)


def ptp_server(ch: SyncChannel, st: PtpState) -> tuple[int, int]:
    """Guest side of one sample: returns (offset, ts) after sending OFFSET; raises PeerError."""
    flags = st.flags if st.clock.available else st.flags & ~T.PTP_FLAG_USE_MARKER
    series = st.series + 1
    ch.send(T.encode_tsync(T.PtpStart(series, flags)))
    _check(ch.recv_tsync(), T.PROTO_PTP, T.PTP_START, "START")
    use_marker = bool(flags & T.PTP_FLAG_USE_MARKER)
    if use_marker:
        st.clock.clear()
    st.series = series
    size = 2 * T.PTP_SYNC_LOOP
    table = [(0, 0)] * size
    stored = 0

    def track(count: int, packet: str) -> None:
        nonlocal stored
        if use_marker:
            st.clock.mark(series, count, packet)
        else:
            idx = count - 1 if packet == "r" else size // 2 + count - 1
            table[idx] = (_monotonic_raw(), count)
            stored += 1

    for count in range(1, T.PTP_SYNC_LOOP + 1):
        track(count, "s")
        ch.send(T.encode_tsync(T.PtpProbe(count)))
        r = ch.recv_tsync()
        track(count, "r")
        if r.proto != T.PROTO_PTP or r.command != T.PTP_PROBE:
            raise PeerError(f"ptp: probe {count}: got {r.proto}/{r.command}")
        if T.decode_tsync(r) != T.PtpProbe(count):
            raise PeerError(f"ptp: probe {count} answered with another count")
    ch.send(T.encode_tsync(T.PtpEnd()))
    probes = _expect(ch, T.PROTO_PTP, T.PTP_PROBES, "PROBES", T.PtpProbes)
    if use_marker:
        for (packet, count), ts in st.clock.collect(series).items():
            if packet == "r" and count <= size:
                table[count - 1] = (ts, count)
            elif packet == "s" and count * 2 <= size:
                table[size // 2 + count - 1] = (ts, count)
            else:
                continue
            stored += 1
    offset, ts, bad = ptp_fastest(table, stored, probes.samples, probes.count)
    st.stats.append((series, offset, bad))
    ch.send(T.encode_tsync(T.PtpOffset(ts, offset)))
    return offset, ts


def ptp_client(ch: SyncChannel, st: PtpState) -> tuple[int, int]:
    """Host side of one sample: echo the guest's probes, report our receive times, get its OFFSET."""
    m = ch.recv_tsync()
    start = _decode(m, T.PROTO_PTP, T.PTP_START, "START", T.PtpStart)
    ch.send(m)  # echoed as received
    series, flags = start.series_id, start.flags
    use_marker = bool(flags & T.PTP_FLAG_USE_MARKER) and st.clock.available
    if flags & T.PTP_FLAG_USE_MARKER and not st.clock.available:
        log.warning("time sync: the guest asks for trace markers, which this host cannot write: "
                    "using CLOCK_MONOTONIC_RAW (offsets are then not in trace-clock units)")
    st.series, st.flags = series, flags
    size = T.PTP_SYNC_LOOP
    table = [(0, 0)] * (2 * size)
    stored = 0
    while True:
        m = ch.recv_tsync()
        if m.proto != T.PROTO_PTP or m.command != T.PTP_PROBE or len(m.payload) != 4:
            break
        count = int.from_bytes(m.payload, "big", signed=True)
        if count == 0:
            break
        if count % 50 == 0 or count < 3:
            log.debug("ptp client: probe %d", count)
        if use_marker:
            st.clock.mark(series, count, "r")
        elif 0 < count <= size:
            table[count - 1] = (_monotonic_raw(), count)
            stored += 1
        ch.send(m)
    if m.proto != T.PROTO_PTP or m.command != T.PTP_END:
        raise PeerError(f"ptp: expected PROBE or END, got {m.proto}/{m.command}")
    if use_marker:
        for (packet, count), ts in st.clock.collect(series).items():
            if packet == "r" and 0 < count <= size:
                table[count - 1] = (ts, count)
                stored += 1
    ch.send(T.encode_tsync(T.PtpProbes(series, stored, tuple(table))))
    res = _expect(ch, T.PROTO_PTP, T.PTP_OFFSET, "OFFSET", T.PtpOffset)
    st.stats.append((series, res.offset, 0))
    return res.offset, res.ts


# --- kvm ---------------------------------------------------------------------------------------------------
def kvm_guest(ch: SyncChannel, clock: MarkerClock) -> T.KvmClock:
    """Guest side of one sample: REQUEST(x86-tsc time of a fresh marker) -> the host's RESPONSE.

    Without a marker clock the request carries ts 0, which the host answers but does not record
    (trace-cmd sends what its search found, 0 when nothing).
    """
    ts = clock.stamp(KVM_MARKER) if clock.available else 0
    ch.send(T.encode_tsync(T.KvmClock(False, ts)))
    resp = _expect(ch, T.PROTO_KVM, T.KVM_RESPONSE, "RESPONSE", T.KvmClock)
    if resp.ts != ts:
        raise PeerError(f"kvm: the host answered request {ts} with {resp.ts}")
    return resp


def kvm_host(ch: SyncChannel, files: kvm.VcpuClockFiles) -> T.KvmClock:
    """Host side of one sample: the vCPU's debugfs numbers, read before the guest's REQUEST is taken
    (as ``kvm_clock_host()``), sent back as RESPONSE(ts echoed, -tsc_offset, scaling, frac)."""
    try:
        offset, scaling, frac = kvm.read_clock(files)
    except kvm.KvmError as e:
        raise PeerError(f"kvm: {e}") from e
    req = _expect(ch, T.PROTO_KVM, T.KVM_REQUEST, "REQUEST", T.KvmClock)
    resp = T.KvmClock(True, req.ts, s64(-offset), scaling, frac)
    ch.send(T.encode_tsync(resp))
    return resp


# --- framing: host ----------------------------------------------------------------------------------------
@dataclass
class CpuSamples:
    times: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    scalings: list[int] = field(default_factory=list)
    fractions: list[int] = field(default_factory=list)


class HostTimeSync(threading.Thread):
    """``tsync_with_guest()``: rounds of per-vCPU samples until stopped, then STOP.

    ``interval_ms`` is ``--tsync-interval``: 0 = a round at start and one at stop; > 0 = also one every
    interval.  :meth:`wait_first_round` is trace-cmd's barrier: recording starts after the first round.
    """

    def __init__(self, sock: socket.socket, proto: str, vcpus: int, interval_ms: int, clock: str | None,
                 name: str = "guest", timeout: float = SYNC_TIMEOUT,
                 kvm_files: Sequence[kvm.VcpuClockFiles] | None = None) -> None:
        super().__init__(name=f"kshark-tsync-{name}", daemon=True)
        if proto not in PROTOCOL_FLAGS:
            raise ValueError(f"time-sync protocol {proto!r} is not supported")
        if proto == T.PROTO_KVM and (kvm_files is None or len(kvm_files) != vcpus):
            raise ValueError("kvm time sync needs the debugfs files of every vCPU")
        self.kvm_files = list(kvm_files or ())
        prepare_socket(sock)
        self.ch = SyncChannel(sock, f"time sync with {name}", timeout)
        self.proto = proto
        self.vcpus = vcpus
        self.interval = interval_ms
        self.samples = [CpuSamples() for _ in range(vcpus)]
        self.rounds = 0
        self.error: str | None = None
        self._clock_name = clock
        self._first = threading.Event()
        self._stop_req = threading.Event()
        self.state: PtpState | None = None

    def wait_first_round(self, timeout: float = FIRST_ROUND_TIMEOUT) -> bool:
        return self._first.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask for the final round and STOP, and wait for them (bounded)."""
        self._stop_req.set()
        self.join(timeout)
        if self.is_alive():
            self.error = self.error or "time sync did not finish its last round"
            self.ch.close()
            self.join(5)

    def run(self) -> None:
        clock = MarkerClock(self._clock_name) if self.proto == T.PROTO_PTP else _NO_CLOCK
        self.state = PtpState(clock)
        try:
            end = False
            while True:
                ok = self._round()
                self._first.set()
                if end or not ok:
                    break
                if self.interval > 0:
                    end = self._stop_req.wait(self.interval / 1000)
                else:
                    self._stop_req.wait()
                    end = True
            with contextlib.suppress(PeerError):
                self.ch.send(T.encode_tsync(T.SyncStop()))
        except Exception as e:  # the session goes on without (more) samples; logged once
            self.error = str(e)
            log.error("time sync: %s", e)
        finally:
            self._first.set()
            clock.close()
            self.ch.close()

    def _round(self) -> bool:
        assert self.state is not None
        for cpu in range(self.vcpus):
            try:
                self.ch.send(T.encode_tsync(T.SyncProbe(cpu)))
                if self.proto == T.PROTO_KVM:
                    r = kvm_host(self.ch, self.kvm_files[cpu])
                    offset, ts, scaling, frac = r.offset, r.ts, r.scaling, r.frac
                else:
                    offset, ts = ptp_client(self.ch, self.state)
                    scaling, frac = 1, 0
            except PeerError as e:
                self.error = str(e)
                log.warning("Failed to synchronize timestamps with guest: %s", e)
                return False
            if offset and ts and scaling:  # tsync_get_sample(): a zero offset/time/scaling is not a sample
                s = self.samples[cpu]
                s.times.append(ts)
                s.offsets.append(offset)
                s.scalings.append(scaling)
                s.fractions.append(frac)
        self.rounds += 1
        return True

    @property
    def flags(self) -> int:
        return PROTOCOL_FLAGS[self.proto]

    def complete(self) -> bool:
        """Whether every vCPU has a sample (trace-cmd writes no TIME_SHIFT otherwise)."""
        return bool(self.vcpus) and all(s.times for s in self.samples)


def time_shift_payload(lay, peer_trace_id: int, flags: int, samples: Sequence[CpuSamples]) -> bytes:
    """TIME_SHIFT as ``tracecmd_write_guest_time_shift()`` writes it (fraction arrays use the last count)."""
    from .writer import TimeShiftSamples, opt_time_shift

    last = len(samples[-1].times) if samples else 0
    cpus = []
    for s in samples:
        fr = (s.fractions + [0] * last)[:last]
        cpus.append(TimeShiftSamples(s.times, s.offsets, s.scalings, fr))
    return opt_time_shift(lay, peer_trace_id, flags, cpus)


# --- framing: guest ----------------------------------------------------------------------------------------
class GuestTimeSync(threading.Thread):
    """``tsync_with_host()``: answer PROBE(vCPU) with one protocol exchange pinned to that CPU, until STOP."""

    def __init__(self, sock: socket.socket, proto: str, clock: str | None, timeout: float = SYNC_TIMEOUT,
                 idle_timeout: float = 24 * 3600.0, on_sample: Callable[[int, int, int], None] | None = None) -> None:
        super().__init__(name="kshark-tsync-host", daemon=True)
        prepare_socket(sock)
        self.ch = SyncChannel(sock, "time sync with the host", timeout)
        self.proto = proto
        self.idle_timeout = idle_timeout
        self.samples: list[tuple[int, int, int]] = []  # (cpu, offset, ts)
        self.error: str | None = None
        self._clock_name = clock
        self._on_sample = on_sample
        self.state: PtpState | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        kvm_mode = self.proto == T.PROTO_KVM
        clock = MarkerClock(kvm.TSC_CLOCK if kvm_mode else self._clock_name)
        if kvm_mode and not clock.available:
            log.warning("kvm time sync: no x86-tsc trace marker (%s): requests carry no time", clock.error)
        self.state = PtpState(clock)
        try:
            while True:
                m = self.ch.recv(self.idle_timeout)
                if not isinstance(m, M.TimeSync) or m.proto != T.PROTO_NONE or m.command != T.TSYNC_PROBE:
                    break
                try:
                    probe = T.decode_tsync(m)
                except M.PeerProtocolError as e:
                    raise PeerError(str(e)) from e
                assert isinstance(probe, T.SyncProbe)
                old = _pin(probe.cpu)
                try:
                    if kvm_mode:
                        r = kvm_guest(self.ch, clock)
                        offset, ts = r.offset, r.ts
                    else:
                        offset, ts = ptp_server(self.ch, self.state)
                finally:
                    if old is not None:
                        with contextlib.suppress(OSError):
                            os.sched_setaffinity(0, old)
                self.samples.append((probe.cpu, offset, ts))
                if self._on_sample:
                    self._on_sample(probe.cpu, offset, ts)
        except PeerError as e:
            self.error = str(e)
            log.warning("time sync with the host ended: %s", e)
        finally:
            self.stopped.set()
            clock.close()
            self.ch.close()


def _pin(cpu: int) -> set[int] | None:
    """Pin the calling thread to ``cpu`` (Linux: pid 0 is the thread); returns the old mask."""
    try:
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        return old
    except (OSError, ValueError):
        return None

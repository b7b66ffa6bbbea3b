"""Host role: record this kernel and each guest's agent, like ``trace-cmd record -A``.

Per guest (shared/spec/agent-protocol.md §3): look for the guest's FIFOs, connect the control
channel, TRACE_REQ (guest arguments, our trace id) -> TRACE_RESP -> the guest's file metadata
(SEND_DATA until FIN_DATA) written verbatim to ``trace-NAME.dat`` -> one receiver per guest CPU (TCP
or vsock connection to the announced port, or the ``.out`` FIFO).  On stop: CLOSE, wait for CLOSE_RESP,
let the data streams end, then append the guest's flyrecord section to its file and write the host
file with a GUEST option per guest.  Every step has a timeout; a guest that stops answering is logged
and its data so far is still written out.  The order of the control messages is :mod:`.handshake`'s
table: a message out of order ends that guest's start with one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..loaders.layout import Layouts, OptionId, layouts
from . import guestspool, kvm
from . import msg as M
from . import tsync_msg as T
from .eventspec import EventSpec
from .handshake import Side, State
from .recorder import Recorder
from .spool import SpoolError
from .tracefs import RecordError
from .transport import (
    MSG_TIMEOUT,
    VMADDR_CID_ANY,
    VSOCK_DEFAULT_PORT,
    Address,
    Channel,
    PeerError,
    SessionChannel,
    StreamReceiver,
    check_port,
    connect,
    host_fifos,
    open_host_fifo,
)
from .tsync import SUPPORTED_PROTOCOLS, HostTimeSync, time_shift_payload
from .writer import CpuData, WriterError, append_to_v7, opt_guest, opt_tsc2nsec

log = logging.getLogger("kshark_py.capture")

CLOSE_RESP_TIMEOUT = 30.0


def guest_file_name(output: str | os.PathLike, name: str) -> Path:
    """``trace.dat`` -> ``trace-NAME.dat`` (name inserted before the last extension, as trace-cmd)."""
    p = Path(output)
    if p.suffix:
        return p.with_name(f"{p.stem}-{name}{p.suffix}")
    return p.with_name(f"{p.name}-{name}")


TRANSPORTS = ("vsock", "tcp")
"""What a guest's control connection may be forced to (None: chosen from the address, as trace-cmd)."""


def parse_guest_spec(spec: str, transport: str | None = None) -> tuple[str | None, Address]:
    """``NAME@CID[:PORT]``, ``NAME@HOST:PORT``, ``CID[:PORT]`` or ``HOST:PORT`` -> (name, address).

    An IPv6 host is written in brackets (``g@[::1]:18000``), as in URLs; the brackets are not part of it.

    Without ``transport`` (trace-cmd's rule) a numeric host is a vsock CID (default port 823) and anything
    else (an IP or host name) a TCP agent.  With ``transport`` "vsock" or "tcp" the address must be of that
    kind: a front end whose user chose the transport must not silently connect another way.
    CIDs and vsock ports are 32-bit, TCP ports 1..65535; a port is decimal digits (ValueError otherwise).
    """
    if transport is not None and transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})")
    name, addr = _parse_guest_spec(spec)
    if transport == "vsock" and addr.family != "vsock":
        raise ValueError(f"guest {spec!r}: a vsock address is CID[:PORT] (the guest's context id, a number), "
                         f"not a host name or IP")
    if transport == "tcp" and addr.family != "tcp":
        raise ValueError(f"guest {spec!r}: a TCP address is HOST:PORT (an IP or host name and the agent's port)")
    return name, addr


def _parse_guest_spec(spec: str) -> tuple[str | None, Address]:
    name = None
    if "@" in spec:
        name, spec = spec.split("@", 1)
    host, _, port_s = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not host:
        host, port_s = spec, ""
    if port_s and not re.fullmatch(r"\d+", port_s):
        raise ValueError(f"guest {spec!r}: bad port {port_s!r} (decimal digits)")
    port = int(port_s) if port_s else VSOCK_DEFAULT_PORT
    if re.fullmatch(r"\d+", host):
        cid = int(host)
        if cid > VMADDR_CID_ANY:
            raise ValueError(f"guest {spec!r}: vsock CID {cid} out of range (0..{VMADDR_CID_ANY})")
        family = "vsock"
    elif not port_s or not host.strip(":"):
        raise ValueError(f"guest {spec!r}: a TCP agent needs HOST:PORT")
    else:
        family = "tcp"
        if host.startswith("[") and host.endswith("]"):  # an IPv6 literal in URL brackets: [::1]:PORT
            host = host[1:-1]
            if not host:
                raise ValueError(f"guest {spec!r}: empty IPv6 address in brackets")
    try:
        check_port(family, port)
    except ValueError as e:
        raise ValueError(f"guest {spec!r}: {e}") from None
    return name, Address(family, cid if family == "vsock" else host, port)


NO_EVENT_ERROR = "no event or plugin was specified (-e EVENT; -e all records every event)"
"""Neither host nor guest events (the CLI's parser and :class:`HostSession` refuse it alike)."""


def guest_without_events_error(name: str) -> str:
    """Why a guest without ``-e`` is refused (the CLI's parser and :class:`HostSession` alike)."""
    return (f"guest {name}: no event was specified for it (-e after -A; -e all records every event): "
            "trace-cmd's agent aborts such a request")


@dataclass
class GuestConfig:
    """One ``-A`` and the options that followed it."""

    spec: str
    name: str | None = None
    specs: list[EventSpec] = field(default_factory=list)
    use_fifos: bool = True
    fifos_required: bool = False
    """The user chose the FIFO transport (preflight: missing FIFOs are an error, not a fallback)."""
    extra_args: list[str] = field(default_factory=list)
    guest_pid: int | None = None
    """The host process running the guest (``--guest-pid``); vsock guests are looked up by CID otherwise."""
    transport: str | None = None
    """"vsock" or "tcp": the address must be of that kind; None: as trace-cmd (a numeric host is a CID)."""

    def address(self) -> tuple[str | None, Address]:
        """(name from the spec, address), checked against :attr:`transport` (ValueError says what is wrong)."""
        return parse_guest_spec(self.spec, self.transport)

    def display_name(self) -> str:
        """The guest's name for messages: ``name``, the spec's NAME@, or the spec itself."""
        try:
            return self.name or self.address()[0] or self.spec
        except ValueError:
            return self.name or self.spec


@dataclass
class GuestSession:
    cfg: GuestConfig
    name: str
    addr: Address
    file: Path
    channel: SessionChannel | None = None
    resp: M.TraceResp | None = None
    receivers: list[StreamReceiver] = field(default_factory=list)
    fifo_fds: list[int] = field(default_factory=list)
    error: str | None = None
    metadata_bytes: int = 0
    tsync: HostTimeSync | None = None
    pid: int | None = None
    """The host process running the guest (given, or found from the vsock CID), if known."""
    tasks: list[int] = field(default_factory=list)
    kvm_refused: str | None = None
    """Why the kvm time-sync protocol is not offered to this guest (None: it is)."""
    mapper: kvm.VcpuMapper | None = None
    vcpu_pids: list[int] | None = None
    """Host thread of each guest VCPU (from kvm_entry during the first time-sync round), if all were seen."""
    file_started: bool = False
    """``file`` was (re)written by this session's start (removed again if the start fails)."""
    failed: bool = False
    """Its start failed and the session went on without it (``keep_going``): nothing of it is written."""
    step: str = "connecting"
    """How far its start got (for the message when the agent gives up)."""
    folder: Path | None = None
    """Where its CPU data is received (:mod:`.guestspool`): removed once its file is complete."""
    kept: Path | None = None
    """Its file could not be completed (a full disk): everything of it is kept in this folder."""

    def args(self, clock: str) -> tuple[str, ...]:
        out = ["-C", clock]
        for s in self.cfg.specs:
            out += ["-e", f"{s.system}:{s.event}" if s.system and s.event else (s.system or s.event or "all")]
            if s.filter:
                out += ["-f", s.filter]
        return tuple(out + self.cfg.extra_args)


class HostSession:
    """The whole host-side recording: local events (optional) plus guests.

    As trace-cmd 3.1.6's ``record``: without host events (no ``-e`` before the first ``-A``) the host is
    not traced at all and no host file is written, only the guests' files; with neither host events nor
    guests there is nothing to do (RecordError); a guest without events is refused before anything starts
    (trace-cmd's agent aborts such a request).  ``-e all`` records every event.

    ``keep_going``: a guest whose start fails (its agent refuses or dies, e.g. trace-cmd's agent without
    ftrace access) is dropped with its reason in ``error`` and the session records the rest; without it (the
    CLI, as trace-cmd) such a failure ends the whole session before anything is recorded.
    """

    def __init__(self, output: str | os.PathLike, specs: Sequence[EventSpec], guests: Sequence[GuestConfig], *,
                 buffer_kb: int | None = None, clock: str | None = None, version: int = 7,
                 compression: str | None = "zstd", timeout: float = MSG_TIMEOUT, tsync_interval: int = 0,
                 keep_going: bool = False) -> None:
        self.output = Path(output)
        self.keep_going = keep_going
        self.tsync_interval = tsync_interval
        """``--tsync-interval`` in ms: < 0 offers no time sync, 0 syncs at start and stop, > 0 also periodically."""
        self.version = version
        self.compression = compression
        self.timeout = timeout
        if not specs and not guests:
            raise RecordError(NO_EVENT_ERROR)
        self.record_host = bool(specs)
        """False: only guests are recorded (no host -e); no tracefs instance, no host file."""
        self.recorder = Recorder(specs, buffer_kb=buffer_kb, clock=clock, keep_unwritten=True)
        self.user_clock = clock
        self.tsc2nsec: tuple[int, int] | None = None
        """(mult, shift) written as TSC2NSEC to the host and guest files when x86-tsc was chosen for kvm."""
        self.guests: list[GuestSession] = []
        self.unfinished_guests: list[str] = []
        self.kept_guests: list[str] = []
        self._clock_note: str | None = None
        for g in guests:
            name, addr = g.address()
            name = g.name or name or str(addr.host)
            if not g.specs:
                raise RecordError(guest_without_events_error(name))
            self.guests.append(GuestSession(g, name, addr, guest_file_name(self.output, name)))

    # -- setup
    def plan_clock(self) -> str | None:
        """Find the guests' processes and choose the session clock (``set_tsync_params()``).

        Without -C: if kvm time sync is possible on this host (a VM in debugfs), every guest's process is
        known, x86-tsc exists and the kernel gives TSC->ns factors, everybody records with x86-tsc and
        the files get TSC2NSEC; otherwise the instance's default clock is used.  Returns the forced clock.
        """
        for g in self.guests:
            g.pid = g.cfg.guest_pid
            if g.pid is None and g.addr.family == "vsock":
                g.pid = kvm.find_pid_by_cid(int(g.addr.host))
                if g.pid is not None:
                    log.info("guest %s: CID %s is run by process %d", g.name, g.addr.host, g.pid)
            if g.pid is not None:
                g.tasks = kvm.guest_tasks(g.pid)
                if not g.tasks:
                    log.warning("guest %s: process %d does not exist", g.name, g.pid)
        if self.user_clock is not None or not self.guests:
            return None
        why = None
        conv = None
        if not kvm.host_supported():
            why = "no KVM guest in debugfs"
        elif any(g.pid is None for g in self.guests):
            why = "a guest's process is unknown"
        elif not kvm.clock_supported(kvm.TSC_CLOCK, self.recorder.tracefs):
            why = "no x86-tsc trace clock"
        else:
            conv = kvm.tsc2nsec()
            if not conv or not conv[0]:
                why = "the kernel gives no TSC->ns conversion (perf time_mult is 0)"
        if why or conv is None:
            self._clock_note = f"session clock: the default (not x86-tsc: {why})"
            return None
        self.tsc2nsec = conv
        self.recorder.clock = kvm.TSC_CLOCK
        self._clock_note = f"session clock: x86-tsc for host and guests, TSC2NSEC mult {conv[0]} shift {conv[1]}"
        return kvm.TSC_CLOCK

    def _log_clock_note(self) -> None:
        """Log the clock choice once an agent has answered the connection: an unreachable agent then fails
        with its one error line only."""
        if self._clock_note:
            log.info("%s", self._clock_note)
            self._clock_note = None

    def start(self) -> None:
        self.plan_clock()
        clock = (self.recorder.setup(output=str(self.output.absolute()), version=self.version,
                                     compression=self.compression).clock
                 if self.record_host else self.recorder.clock or "local")
        try:
            for g in self.guests:
                try:
                    self._setup_guest(g, clock)
                except (PeerError, OSError, M.ProtocolError) as e:
                    reason = self._failure(g, e)
                    if not self.keep_going:
                        raise PeerError(reason) from e
                    self._drop_guest(g, reason)
            if self.guests and not self.record_host and all(g.failed for g in self.guests):
                raise PeerError("; ".join(g.error or g.name for g in self.guests))
            if self.record_host:
                self.recorder.start()
            else:
                self.recorder.started = time.monotonic()
        except BaseException:
            self.abort()
            self._remove_partial_files()
            raise

    def _failure(self, g: GuestSession, e: BaseException) -> str:
        """The user's reason for a guest's failed start: the step it was at and what its agent did."""
        text = str(e)
        if text.startswith(f"guest {g.name}: "):
            text = text[len(f"guest {g.name}: "):]
        if g.step == "metadata" and "peer closed the connection" in text:
            sent = ("without sending its trace metadata" if not g.metadata_bytes else
                    f"before its trace metadata was complete ({g.metadata_bytes} bytes received)")
            return (f"guest {g.name}: its agent accepted the request, then closed the connection {sent}: it could "
                    "not start recording in the guest (trace-cmd's agent does this without ftrace access there, "
                    "e.g. tracefs not mounted or not root; its own output says why)")
        if g.step == "request" and "peer closed the connection" in text:
            return (f"guest {g.name}: its agent closed the connection without answering the request: it could "
                    "not set up recording in the guest (a missing event, no tracefs, or busy with another host; "
                    "its own output says why)")
        return f"guest {g.name}: {text}"

    def _drop_guest(self, g: GuestSession, reason: str) -> None:
        """Forget a guest whose start failed: close everything of it and delete its partial file."""
        log.error("%s; recording without it", reason)
        self._abort_guest(g)
        if g.file_started:
            with contextlib.suppress(OSError):
                g.file.unlink()
            g.file_started = False
        g.failed = True
        g.error = reason
        g.resp = None
        g.channel = None
        g.tsync = None
        g.receivers = []

    def _remove_partial_files(self) -> None:
        """After a failed start: delete the guest files begun in it (metadata only, no reader can open them).

        trace-cmd dies leaving such a file; nothing of the session was recorded yet, so nothing is lost.
        """
        for g in self.guests:
            if g.file_started:
                with contextlib.suppress(OSError):
                    g.file.unlink()
                g.file_started = False

    def _setup_guest(self, g: GuestSession, clock: str) -> None:
        g.step = "connecting"
        fifos = host_fifos(g.name) if g.cfg.use_fifos else []
        for p in fifos:
            g.fifo_fds.append(open_host_fifo(p))
        try:
            sock = connect(g.addr, self.timeout)
        except PeerError as e:
            raise PeerError(f"guest {g.name}: {e}") from e
        self._log_clock_note()
        g.channel = ch = SessionChannel(sock, f"guest {g.name}", Side.HOST, self.timeout)
        protos = self._protocols(g, clock) if self.tsync_interval >= 0 else None
        g.step = "request"
        ch.send(M.TraceReq(M.MSG_TRACE_USE_FIFOS if fifos else 0, self.recorder.trace_id, g.args(clock), protos))
        resp = ch.recv()
        if ch.handshake.state is State.REFUSED:
            raise PeerError(f"guest {g.name}: its agent refused the request (NOT_SUPP: it does not support it)")
        assert isinstance(resp, M.TraceResp)  # the table's only other way out of State.RESPONSE
        g.resp = resp
        log.info("guest %s: %d CPUs, page size %d, %s", g.name, resp.cpus, resp.page_size,
                 "FIFOs" if resp.use_fifos else f"ports {list(resp.ports)}")
        if g.pid is not None and g.tasks:  # trace-cmd maps VCPUs during the first time-sync round
            g.mapper = kvm.VcpuMapper(g.pid, g.tasks)
            if not g.mapper.start():
                log.info("guest %s: no VCPU mapping: %s", g.name, g.mapper.error)
                g.mapper = None
        if resp.tsync_proto:
            self._start_tsync(g, resp, clock)
        # the guest's file metadata, verbatim
        g.step = "metadata"
        g.file_started = True
        with open(g.file, "wb") as f:
            while isinstance(m := ch.recv(), M.SendData):
                f.write(m.data)
                g.metadata_bytes += len(m.data)
            if ch.handshake.state is State.REFUSED:
                raise PeerError(f"guest {g.name}: its agent gave up before its trace metadata was complete "
                                "(NOT_SUPP)")
        if g.tsync is not None and not g.tsync.wait_first_round():
            log.error("guest %s: the first time-sync round did not finish", g.name)
        if g.mapper is not None:
            g.vcpu_pids = g.mapper.stop(resp.cpus)
            if g.vcpu_pids is None:
                log.warning("guest %s: VCPU threads not found: %s", g.name, g.mapper.error)
            else:
                log.info("guest %s: VCPU threads %s (from %s)", g.name, g.vcpu_pids, ", ".join(g.mapper.sources))
            g.mapper = None
        g.step = "data"
        g.folder = guestspool.create(self.output.parent, g.name, g.file)
        tmpdir = str(g.folder)
        if resp.use_fifos:
            if not fifos:
                raise PeerError(f"guest {g.name}: answered with FIFOs that the host does not have")
            ncpu = min(resp.cpus, len(fifos))
            if ncpu != resp.cpus:
                log.warning("guest %s: %d CPUs but %d FIFOs", g.name, resp.cpus, len(fifos))
            for cpu in range(ncpu):
                g.receivers.append(StreamReceiver(cpu, os.path.join(tmpdir, f"cpu{cpu}"), fd=g.fifo_fds[cpu]))
            for fd in g.fifo_fds[ncpu:]:
                os.close(fd)
            g.fifo_fds = []
        else:
            for fd in g.fifo_fds:
                os.close(fd)
            g.fifo_fds = []
            for cpu, port in enumerate(resp.ports):
                try:
                    s = connect(Address(g.addr.family, g.addr.host, port), self.timeout)
                except PeerError as e:
                    raise PeerError(f"guest {g.name}: CPU {cpu} data: {e}") from e
                g.receivers.append(StreamReceiver(cpu, os.path.join(tmpdir, f"cpu{cpu}"), sock=s))
        for r in g.receivers:
            r.start()

    def _protocols(self, g: GuestSession, clock: str) -> tuple[str, ...]:
        """What we offer this guest: kvm (when we can read its TSC offsets with this clock), then ptp."""
        g.kvm_refused = kvm.kvm_unavailable_reason(g.pid, clock)
        if g.kvm_refused:
            log.info("guest %s: kvm time sync not offered: %s", g.name, g.kvm_refused)
            return tuple(p for p in SUPPORTED_PROTOCOLS if p != T.PROTO_KVM)
        return SUPPORTED_PROTOCOLS

    def _start_tsync(self, g: GuestSession, resp: M.TraceResp, clock: str) -> None:
        """Connect to the guest's time-sync port and run the first round before recording (trace-cmd order)."""
        if resp.tsync_proto not in SUPPORTED_PROTOCOLS:
            log.warning("guest %s chose time-sync protocol %r, which we do not support: no time sync",
                        g.name, resp.tsync_proto)
            return
        log.info("Negotiated %s time sync protocol with guest %s", resp.tsync_proto, g.name)
        files = None
        if resp.tsync_proto == T.PROTO_KVM:
            try:
                if g.pid is None:
                    raise kvm.KvmError("the guest's process is unknown")
                files = kvm.open_clock_files(g.pid, resp.cpus)
            except (kvm.KvmError, OSError) as e:
                log.error("guest %s: kvm time sync impossible: %s", g.name, e)
        try:
            sock = connect(Address(g.addr.family, g.addr.host, resp.tsync_port), self.timeout)
        except PeerError as e:
            raise PeerError(f"guest {g.name}: time sync: {e}") from e
        if resp.tsync_proto == T.PROTO_KVM and files is None:
            # the guest waits on this port: connect and say STOP at once, so it ends its sync cleanly
            ch = Channel(sock, f"time sync with {g.name}", self.timeout)
            with contextlib.suppress(PeerError):
                ch.send(T.encode_tsync(T.SyncStop()))
            ch.close()
            return
        g.tsync = HostTimeSync(sock, resp.tsync_proto, resp.cpus, self.tsync_interval, clock, g.name,
                               kvm_files=files)
        g.tsync.start()

    # -- stop
    def stop(self) -> None:
        """Stop local tracing, tell guests to stop, wait for their streams (bounded)."""
        if self.record_host:
            self.recorder.stop()
        else:
            self.recorder.stopped = time.monotonic()
        for g in self.guests:
            if g.channel is None:
                continue
            try:
                g.channel.send(M.Close())
                if g.tsync is not None:  # host_tsync_complete(): last round and STOP before CLOSE_RESP
                    g.tsync.stop()
                g.channel.recv(CLOSE_RESP_TIMEOUT)  # CLOSE_RESP: the table skips (and logs) anything else
            except (PeerError, M.ProtocolError) as e:
                g.error = str(e)
                log.error("guest %s: %s; keeping the data received so far", g.name, e)
            for r in g.receivers:
                r.finish()
        for g in self.guests:
            for r in g.receivers:
                r.join(r.drain_timeout + 5)
            if g.channel is not None:
                g.channel.close()

    def write(self) -> list[Path]:
        """Complete each guest file (flyrecord + BUFFER) and write the host file (if the host was recorded);
        returns the paths written, the host file first."""
        extra = []
        lay = layouts("<", 8)  # the recorder writes little-endian files with 8-byte longs
        written = []
        tsc = [(OptionId.TSC2NSEC, opt_tsc2nsec(lay, *self.tsc2nsec))] if self.tsc2nsec else []
        clock = "tsc2nsec" if self.tsc2nsec else None  # trace-cmd's output clock with TSC2NSEC
        self.unfinished_guests: list[str] = []
        """Guests whose received file could not be completed (see the guest's ``error``)."""
        self.kept_guests: list[str] = []
        """Guests whose file could not be written (a full disk), all their data kept (``GuestSession.kept``)."""
        for g in self.guests:
            if g.resp is None or g.failed:
                continue
            options = self._guest_options(g, lay, tsc)
            try:
                if options:  # before the CPU data, as trace-cmd
                    append_to_v7(g.file, options=options)
                    options = []  # in the file now (each append is all or nothing)
                append_to_v7(g.file, buffer=("", clock or "", [CpuData(r.cpu, r.path) for r in g.receivers]))
            except WriterError as e:  # the agent's bytes are damaged: the host's file is still written
                g.error = f"its file could not be completed: {e}"
                log.error("guest %s: %s", g.name, g.error)
                self.unfinished_guests.append(g.name)
                continue
            except OSError as e:  # a full disk: the file is as it was; everything of the guest is kept
                self._keep_guest(g, options, clock or "", e)
            else:
                written.append(g.file)
            # host thread of each vCPU: from kvm_entry when the guest's process is known, else -1 (as trace-cmd
            # over TCP/FIFOs); a kept guest too: its recovered file pairs with this host file
            pids = g.vcpu_pids if g.vcpu_pids and len(g.vcpu_pids) == g.resp.cpus else [-1] * g.resp.cpus
            extra.append((OptionId.GUEST, opt_guest(lay, g.name, g.resp.trace_id, pids)))
        if not self.record_host:
            return written
        self.recorder.write_file(self.output, version=self.version, compression=self.compression,
                                 extra_options=extra + tsc, clock=clock)
        return [self.output, *written]

    def _guest_options(self, g: GuestSession, lay: Layouts, tsc: list) -> list[tuple[int, bytes]]:
        """The time-sync options appended to a guest's file before its CPU data (as host_tsync_complete())."""
        ts = g.tsync
        if ts is None:
            return []
        opts = list(tsc)
        if ts.complete():
            opts.append((OptionId.TIME_SHIFT, time_shift_payload(lay, self.recorder.trace_id, ts.flags, ts.samples)))
        else:
            log.warning("guest %s: time sync has no sample for some vCPU (a zero offset is none, as in "
                        "trace-cmd: kvm with a guest TSC equal to the host's): no TIME_SHIFT written", g.name)
        return opts

    def _keep_guest(self, g: GuestSession, options: list[tuple[int, bytes]], clock: str, e: OSError) -> None:
        """Its file could not be completed: keep its head, pages and options in its folder (``--recover``)."""
        assert g.folder is not None
        why = e.strerror or str(e)
        try:
            lost = guestspool.keep(g.folder, g.file, options, clock)
        except (OSError, SpoolError) as e2:
            g.error = f"cannot complete {g.file}: {why}; its received data is in {g.folder}, but keeping it " \
                      f"failed too ({e2})"
            self.unfinished_guests.append(g.name)
            log.error("guest %s: %s", g.name, g.error)
            return
        g.kept = g.folder
        g.error = (f"cannot complete {g.file}: {why}; its data is kept in {g.folder}"
                   + (f" ({lost})" if lost else "") + f": free space and run: kshark-py record --recover {g.folder}")
        self.kept_guests.append(g.name)
        log.error("guest %s: %s", g.name, g.error)

    def abort(self) -> None:
        for g in self.guests:
            self._abort_guest(g)
        self.recorder.close()

    @staticmethod
    def _abort_guest(g: GuestSession) -> None:
        """Close everything of one guest: VCPU mapper, time sync, control channel (CLOSE), streams, FIFOs."""
        if g.mapper is not None:
            g.mapper.close()
            g.mapper = None
        if g.tsync is not None:
            g.tsync.ch.close()
        if g.channel is not None:
            g.channel.abort()
        for r in g.receivers:
            r.finish()
            if r.ident is None and r.sock is not None:  # connected, never started (a later CPU failed)
                r.sock.close()
        for fd in g.fifo_fds:
            os.close(fd)
        g.fifo_fds = []

    def close(self) -> Path | None:
        """Remove the instance and temp files; returns the host's spool folder when it is kept (its pages
        are in no verified file: ``kshark-py record --recover`` writes them)."""
        self.recorder.close()
        kept = self.recorder.cleanup_files()
        for g in self.guests:
            if g.folder is not None and g.kept is None:
                shutil.rmtree(g.folder, ignore_errors=True)
        return kept

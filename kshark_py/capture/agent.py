"""Guest role: serve a host's record request like ``trace-cmd agent`` (one session at a time).

Session (shared/spec/agent-protocol.md §3): TRACE_REQ -> configure our own tracefs instance -> TRACE_RESP
(CPU count, page size, our trace id, data ports or FIFOs) -> the file metadata as SEND_DATA + FIN_DATA ->
accept one data connection per CPU (or write the FIFOs) -> record until CLOSE -> flush, CLOSE_RESP.
The order of those messages is :mod:`.handshake`'s table (a message out of order ends the session).

Why a whitelist for the request's arguments: the host's arguments come over an unauthenticated
connection; trace-cmd runs them as a ``record`` command line, we only accept the options that select
what to record (-e, -f, -C, -b) and ignore (with a warning) anything else.  Who may connect at all, and
how a connection becomes the one session, is :mod:`.gate`'s part.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from . import kvm
from . import msg as M
from . import tsync_msg as T
from .eventspec import EventSpec
from .gate import (
    HANDSHAKE_TIMEOUT,
    HOST_CID,
    Allow,
    CidAllow,
    Gate,
    HostAllow,
    bind_addresses,
    close_cleanly,
    describe_peer,
)
from .handshake import HandshakeError, Side
from .recorder import Recorder, new_trace_id
from .sinks import FdSink, SocketSink
from .tracefs import RecordError, cpu_count_online
from .transport import (
    MSG_TIMEOUT,
    PeerError,
    SessionChannel,
    accept,
    listen,
    listen_data_port,
    local_address,
    open_guest_fifos,
    peer_key,
)
from .tsync import GuestTimeSync, select_protocol
from .writer import metadata_stream

log = logging.getLogger("kshark_py.capture")

TSYNC_END_WAIT = 30.0
FIFO_IDLE_BEFORE_CLOSE = 1.0
FIFO_IDLE_AFTER_CLOSE = 5.0
CLOSE_WAIT_LIMIT = 24 * 3600.0
"""How long a recording may wait for the host's CLOSE (a day): the host's Ctrl-C/command decides."""


@dataclass
class GuestRequest:
    """What the host asked for, after the whitelist."""

    specs: list[EventSpec] = field(default_factory=list)
    clock: str | None = None
    buffer_kb: int | None = None
    ignored: list[str] = field(default_factory=list)


def parse_guest_args(args: Sequence[str]) -> GuestRequest:
    """``-e EV [-f FILTER]``, ``-C CLOCK``, ``-b KB``; everything else is reported in ``ignored``."""
    req = GuestRequest()
    i = 0
    a = list(args)
    while i < len(a):
        opt = a[i]
        val = a[i + 1] if i + 1 < len(a) else None
        if opt == "-e" and val is not None:
            req.specs.append(EventSpec.parse(val))
            i += 2
        elif opt == "-f" and val is not None and req.specs:
            last = req.specs[-1]
            req.specs[-1] = EventSpec(last.system, last.event, val)
            i += 2
        elif opt == "-C" and val is not None:
            req.clock = val
            i += 2
        elif opt == "-b" and val is not None and val.isdigit():
            req.buffer_kb = int(val)
            i += 2
        else:
            req.ignored.append(opt)
            i += 1
    return req


class Agent:
    """Listens on one transport/port and serves host sessions one after the other.

    Who may connect and how connections become sessions is :mod:`.gate`'s policy: a TCP agent needs
    ``allowed_host`` (``-N``) and listens on the local address(es) that reach it (or ``listen_addr``); a
    vsock agent answers only ``allowed_cids`` (the host's CID, 2, by default).
    """

    def __init__(self, *, family: str = "tcp", port: int = 823, allowed_host: str | None = None,
                 listen_addr: str | None = None, allowed_cids: Iterable[int] | None = None,
                 timeout: float = MSG_TIMEOUT, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 once: bool = False, tmpdir: str | None = None) -> None:
        self.family = family
        self.port = port
        self.allow: Allow
        if family == "vsock":
            if allowed_host is not None or listen_addr is not None:
                raise ValueError("a vsock agent has no host name or listening address (its hosts are CIDs)")
            self.allow = CidAllow(frozenset(allowed_cids) if allowed_cids is not None else frozenset({HOST_CID}))
        else:
            if allowed_host is None:
                raise ValueError("a TCP agent needs its host's name or address (-N HOST)")
            if allowed_cids is not None:
                raise ValueError("allowed CIDs are for a vsock agent")
            self.allow = HostAllow(allowed_host)
        self.allowed_host = allowed_host
        self.listen_addr = listen_addr
        self.timeout = timeout
        self.handshake_timeout = handshake_timeout
        self.once = once
        self.tmpdir = tmpdir
        self._stop = threading.Event()
        self.lsocks: list[socket.socket] = []
        self.addresses: list[str] = []
        self.gate: Gate | None = None
        self.sessions = 0

    def bind(self) -> int:
        """Open the listening socket(s); the port (the kernel's choice for port 0).  OSError when it cannot."""
        if self.family == "vsock":
            self.lsocks = [listen("vsock", self.port, backlog=socket.SOMAXCONN)]
            self.port = self.lsocks[0].getsockname()[1]
            return self.port
        assert self.allowed_host is not None
        self.addresses = [self.listen_addr] if self.listen_addr is not None else bind_addresses(self.allowed_host)
        try:
            for addr in self.addresses:
                s = listen(self.family, self.port, addr, backlog=socket.SOMAXCONN)  # a flood must not stall a host
                self.lsocks.append(s)
                self.port = s.getsockname()[1]  # port 0: the others take the port the first one got
        except OSError as e:
            self.close()
            where = addr if ":" not in addr else f"[{addr}]"
            raise OSError(e.errno, f"{where}:{self.port}: {e.strerror or e}") from e
        return self.port

    @property
    def lsock(self) -> socket.socket | None:
        """The (first) listening socket."""
        return self.lsocks[0] if self.lsocks else None

    def describe(self) -> str:
        """Where it listens and whom it accepts, for the start-up line."""
        if self.family == "vsock":
            return f"vsock port {self.port}, {self.allow.describe()}"
        return f"TCP port {self.port} on {', '.join(self.addresses)}, {self.allow.describe()}"

    def close(self) -> None:
        for s in self.lsocks:
            s.close()
        self.lsocks = []

    def stop(self) -> None:
        self._stop.set()

    def serve(self) -> None:
        """Serve sessions until stopped (or after one with ``once``), one at a time (see :mod:`.gate`)."""
        if not self.lsocks:
            self.bind()
        log.debug("agent listening on %s", self.describe())  # the CLI prints it
        self.gate = gate = Gate(self.lsocks, self.allow, handshake_timeout=self.handshake_timeout)
        gate.start()
        try:
            while not self._stop.is_set():
                try:
                    r = gate.requests.get(timeout=0.5)
                except queue.Empty:
                    continue
                log.info("session for %s", describe_peer(r.key))
                try:
                    self.serve_connection(r.sock, r.req, r.parser)
                except (PeerError, RecordError, M.ProtocolError, OSError) as e:
                    log.error("session ended: %s", e)
                finally:
                    with contextlib.suppress(OSError):
                        r.sock.close()
                self.sessions += 1
                if self.once:
                    break
                gate.busy.clear()
        finally:
            gate.stop()
            gate.join(5)
            while not gate.requests.empty():  # handed over as we stopped: never served
                close_cleanly(gate.requests.get_nowait().sock)
            self.close()

    def serve_connection(self, sock: socket.socket, first: M.Message | None = None,
                         parser: M.Connection | None = None) -> None:
        """One host session on its control connection; ``first``: its TRACE_REQ if already read (the gate
        reads it, ``parser`` holding any bytes after it)."""
        ch = SessionChannel(sock, "control", Side.AGENT, self.timeout)
        if parser is not None:
            ch.conn = parser
        try:
            if first is None:
                first = ch.recv(self.handshake_timeout)
            else:
                ch.handshake.receive(first)
        except HandshakeError as e:
            if e.answer_not_supp:
                ch.answer_not_supp()
            raise
        assert isinstance(first, M.TraceReq)  # the table's only way out of State.REQUEST
        req = parse_guest_args(first.args or ())
        if req.ignored:
            log.warning("ignoring unsupported record arguments from the host: %s", " ".join(req.ignored))
        if not req.specs:  # as trace-cmd's agent, whose record run dies on this; "-e all" is how to ask for all
            raise RecordError("the host asked for no event: no event or plugin was specified... aborting")
        ncpus = cpu_count_online()
        proto = select_protocol(first.tsync_protos, req.clock)
        log.info("host offers time sync %s (clock %s): %s", list(first.tsync_protos or ()), req.clock or "default",
                 proto or "none chosen")
        if proto == T.PROTO_KVM and req.clock is None:
            req.clock = kvm.TSC_CLOCK  # kvm samples are TSC ticks: record in them too
        fifo_fds = open_guest_fifos(ncpus) if first.use_fifos else None
        data_socks: list[socket.socket] = []
        sinks: dict[int, object] = {}
        rec = None
        tsync_ls: socket.socket | None = None
        tsync: GuestTimeSync | None = None
        # data and time-sync ports: on the address the host reached us at, only for the host's address/CID
        host_key = peer_key(sock.family, sock.getpeername())
        allowed = {host_key} if host_key is not None else None
        here = local_address(sock) or (self.addresses[0] if self.addresses else "")
        try:
            if fifo_fds is None:
                for _ in range(ncpus):
                    s, _port = listen_data_port(self.family, here)
                    data_socks.append(s)
            tsync_port = 0
            if proto:  # after the data ports, as trace-cmd (TCP: next free port from 1500; vsock: any)
                tsync_ls, tsync_port = listen_data_port(self.family, here)
            rec = Recorder(req.specs, clock=req.clock, buffer_kb=req.buffer_kb, tmpdir=self.tmpdir,
                           sink_factory=lambda cpu: sinks[cpu], cpus=ncpus)
            meta = rec.setup()
            trace_id = new_trace_id()
            ports = tuple(0 for _ in range(ncpus)) if fifo_fds is not None else tuple(
                s.getsockname()[1] for s in data_socks)
            ch.send(M.TraceResp(M.MSG_TRACE_USE_FIFOS if fifo_fds is not None else 0, meta.page_size, trace_id,
                                proto or "", tsync_port, ports))
            if proto and tsync_ls is not None:
                tsync_sock = accept(tsync_ls, self.timeout * 2, allowed, watch=sock)
                tsync = GuestTimeSync(tsync_sock, proto, req.clock or meta.clock)
                tsync.start()
                log.info("time sync with the host: %s", proto)
            # the host runs its first time-sync round before it reads the metadata: allow for that
            ch.timeout = max(self.timeout, 60.0)
            ch.send_stream(metadata_stream(meta, trace_id=trace_id, cpu_count=ncpus))
            ch.timeout = self.timeout
            if fifo_fds is not None:
                for cpu, fd in enumerate(fifo_fds):
                    sinks[cpu] = FdSink(fd, meta.page_size, self.tmpdir)
                fifo_fds = None
            else:
                for cpu, ls in enumerate(data_socks):
                    sinks[cpu] = SocketSink(accept(ls, self.timeout * 2, allowed, watch=sock))
            rec.start()
            log.info("recording %d CPUs for the host", ncpus)
            ch.recv(CLOSE_WAIT_LIMIT)  # CLOSE: the table answers anything else with NOT_SUPP and waits on
            rec.stop()
            fifo_sinks = [k for k in sinks.values() if isinstance(k, FdSink)]
            # A host that reads its FIFOs while recording (ours) has everything now; trace-cmd's reads them
            # only after CLOSE_RESP: give up waiting once the FIFOs stop draining, answer, then feed the rest.
            for k in fifo_sinks:
                k.flush(FIFO_IDLE_BEFORE_CLOSE)
            log.info("host closed the session: %d bytes sent", rec.total_bytes)
            ch.send(M.CloseResp())
            for k in fifo_sinks:
                if not k.flush(FIFO_IDLE_AFTER_CLOSE):
                    log.warning("FIFO: the host did not read %d of %d bytes (a trace-cmd host reads at most "
                                "what its FIFO holds, %d bytes)", k.pending, k.delivered + k.pending, k.pipe_size)
                k.release()
            if tsync is not None:  # the host's last round follows its CLOSE; wait for its STOP (bounded)
                tsync.join(TSYNC_END_WAIT)
                if tsync.is_alive():
                    log.warning("time sync: no STOP from the host within %.0f s", TSYNC_END_WAIT)
                log.info("time sync: %d samples, offsets %s", len(tsync.samples), [o for _c, o, _t in tsync.samples])
        finally:
            if tsync is not None and tsync.is_alive():
                tsync.ch.close()
                tsync.join(5)
            if tsync_ls is not None:
                tsync_ls.close()
            if rec is not None:
                rec.close()
                rec.cleanup_files()
            for s in data_socks:
                s.close()
            for fd in fifo_fds or ():
                os.close(fd)
            for sink in sinks.values():
                with contextlib.suppress(Exception):
                    sink.close()  # type: ignore[attr-defined]
                if isinstance(sink, FdSink):
                    sink.release()

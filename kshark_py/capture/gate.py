"""Who may reach the agent, and how a connection becomes a host session (the agent's front door).

Why this exists: the agent runs whatever recording its host asks for, as root, over an unauthenticated
connection (shared/spec/agent-protocol.md §7).  Like trace-cmd 3.1.6's agent, ours used to listen on
every address (data and time-sync ports too), filter ``-N`` by IPv4 peer address resolved once, accept
any vsock CID, and give the one session slot to the first connection, which could then sit silent for
5 s before being dropped: a peer reconnecting every 5 s kept every host out.  The policy now:

* TCP (``-N HOST``): listen only on the local address(es) the kernel routes to HOST (``--listen ADDR``
  overrides), IPv4 and IPv6; a connection is accepted only from an address HOST resolves to *now*
  (re-resolved per connection, a result reused for at most :data:`RESOLVE_TTL` s so that a flood of
  connections is not a flood of DNS queries).  The data and time-sync ports of a session listen on the
  local address its control connection arrived at, and take only the control connection's peer.
* vsock: only the host, CID 2, unless other CIDs are allowed (``--allow-cid``); CID 1 (vsock_loopback)
  would let any local user of the guest drive the agent.
* One host session at a time.  A connection only becomes a session when it has sent its TRACE_REQ;
  until then it waits in a small table (at most :data:`MAX_PENDING`, the oldest dropped first) and is
  closed when it has sent none within the handshake timeout.  A request while a session runs is
  refused at once by closing the connection, as trace-cmd's agent does (its host says "Failed to
  receive trace response", our ``record`` "busy with another host"); the request is read first, so the
  host's writes never meet a reset (trace-cmd's host dies of SIGPIPE, silently, when they do).  A
  message other than TRACE_REQ gets NOT_SUPP and a close.  So silent or reconnecting peers never hold
  the slot, and no connection waits in a queue for it.

Every refusal is logged in one line; repeats of one kind within a second are counted, not repeated.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from . import msg as M
from .handshake import opens_session
from .transport import MSG_TIMEOUT, PeerKey, local_address, normalize_ip, peer_key

log = logging.getLogger("kshark_py.capture")

HOST_CID = 2
"""VMADDR_CID_HOST: the hypervisor's side of vsock, the only CID a guest's agent answers by default."""
HANDSHAKE_TIMEOUT = MSG_TIMEOUT
"""Seconds a new connection has to send its TRACE_REQ (trace-cmd's host sends it at once)."""
MAX_PENDING = 16
RESOLVE_TTL = 1.0
LOG_REPEAT_WINDOW = 1.0

def resolve(host: str) -> list[tuple[int, tuple]]:
    """(family, sockaddr) of every IPv4/IPv6 address of ``host``, in the resolver's order (gaierror)."""
    out: list[tuple[int, tuple]] = []
    for fam, _t, _p, _c, sa in socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_DGRAM):
        if fam in (socket.AF_INET, socket.AF_INET6) and (fam, sa) not in out:
            out.append((fam, sa))
    return out


def route_source(family: int, sockaddr: tuple) -> str:
    """The local address the kernel would send from to reach ``sockaddr`` (a connected UDP socket's
    name; connecting a UDP socket sends nothing).  OSError when there is no route."""
    with socket.socket(family, socket.SOCK_DGRAM) as u:
        u.connect((sockaddr[0], 9, *sockaddr[2:]))
        return local_address(u) or ""


def bind_addresses(host: str) -> list[str]:
    """The local addresses that reach ``host``: one per distinct route source of its addresses.

    OSError (with the reasons) when the name does not resolve or no address of it is reachable.
    """
    try:
        addrs = resolve(host)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host}: {e.strerror or e}") from e
    out: list[str] = []
    why: list[str] = []
    for fam, sa in addrs:
        try:
            src = route_source(fam, sa)
        except OSError as e:
            why.append(f"{sa[0]}: {e.strerror or e}")
            continue
        if src not in out:
            out.append(src)
    if not out:
        raise OSError(f"no local address reaches {host} ({'; '.join(why) or 'no address'}); give --listen ADDR")
    return out


# --- allow-lists ---------------------------------------------------------------------------------------
class HostAllow:
    """``-N HOST``: peers whose address HOST resolves to at the time of the connection."""

    def __init__(self, host: str, ttl: float = RESOLVE_TTL,
                 resolver: Callable[[str], list[tuple[int, tuple]]] | None = None) -> None:
        self.host = host
        self.ttl = ttl
        self._resolver = resolver or resolve
        self._cached: tuple[float, frozenset[str]] | None = None

    def addresses(self) -> frozenset[str]:
        """HOST's addresses now (cached for ``ttl`` s); OSError when it does not resolve."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        try:
            found = frozenset(normalize_ip(str(sa[0])) for _f, sa in self._resolver(self.host))
        except socket.gaierror as e:
            raise OSError(f"cannot resolve {self.host}: {e.strerror or e}") from e
        self._cached = (now, found)
        return found

    def check(self, key: PeerKey | None) -> str | None:
        """None if ``key`` may connect, else why not (for the log line)."""
        try:
            allowed = self.addresses()
        except OSError as e:
            return f"{e}: cannot tell whether it is the host"
        if key in allowed:
            return None
        return f"not {self.host} ({', '.join(sorted(allowed)) or 'no address'})"

    def describe(self) -> str:
        return f"only from {self.host}"


@dataclass(frozen=True)
class CidAllow:
    """vsock: peers whose CID is in ``cids`` (by default the host's, 2)."""

    cids: frozenset[int] = field(default_factory=lambda: frozenset({HOST_CID}))

    def check(self, key: PeerKey | None) -> str | None:
        if key in self.cids:
            return None
        return (f"CID {key} is not an allowed CID ({', '.join(map(str, sorted(self.cids)))}; the host is "
                f"{HOST_CID}, --allow-cid adds one)")

    def describe(self) -> str:
        return "only from CID " + ", ".join(map(str, sorted(self.cids)))


class Allow(Protocol):
    """An allow-list: ``check(key)`` is None for an allowed peer, else the reason."""

    def check(self, key: PeerKey | None) -> str | None: ...

    def describe(self) -> str: ...


def describe_peer(key: PeerKey | None) -> str:
    if isinstance(key, int):
        return f"vsock CID {key}"
    return str(key) if key is not None else "an unnamed peer"


# --- the front door ------------------------------------------------------------------------------------
class QuietLog:
    """One log line per kind and second; the repeats in between are counted into the next line."""

    def __init__(self, window: float = LOG_REPEAT_WINDOW) -> None:
        self.window = window
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, kind: str, text: str) -> None:
        now = time.monotonic()
        last, skipped = self._last.get(kind, (-1e9, 0))
        if now - last < self.window:
            self._last[kind] = (last, skipped + 1)
            return
        self._last[kind] = (now, 0)
        log.warning("%s%s", text, f" ({skipped} more like this in the last {now - last:.0f} s)" if skipped else "")


@dataclass
class Pending:
    """An accepted connection that has not sent its TRACE_REQ yet."""

    sock: socket.socket
    key: PeerKey | None
    deadline: float
    parser: M.Connection = field(default_factory=M.Connection)


@dataclass
class Request:
    """A connection that asked for a session: the agent serves it (``parser`` holds any later bytes)."""

    sock: socket.socket
    key: PeerKey | None
    req: M.TraceReq
    parser: M.Connection


class Gate(threading.Thread):
    """Accepts on the agent's listening sockets, applies the allow-list and the one-session policy, and
    hands each admitted TRACE_REQ to the agent through ``requests`` (one at a time: ``busy`` is set when
    one is handed over, the agent clears it when the session is over)."""

    def __init__(self, lsocks: Iterable[socket.socket], allow: Allow, *,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT, max_pending: int = MAX_PENDING) -> None:
        super().__init__(name="kshark-agent-gate", daemon=True)
        self.lsocks = list(lsocks)
        self.allow = allow
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self.requests: queue.Queue[Request] = queue.Queue()
        self.busy = threading.Event()
        self.session_peer: PeerKey | None = None
        self.pending: list[Pending] = []
        self.refused = 0
        self._halt = threading.Event()
        self._log = QuietLog()
        for s in self.lsocks:
            s.setblocking(False)

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.step(0.2)
        finally:
            for p in self.pending:
                p.sock.close()
            self.pending.clear()

    def step(self, wait: float) -> None:
        """Wait up to ``wait`` s for connections or handshake bytes and handle them; expire the silent."""
        now = time.monotonic()
        self._expire(now)
        if self.pending:
            wait = max(0.0, min(wait, min(p.deadline for p in self.pending) - now))
        socks = [*self.lsocks, *(p.sock for p in self.pending)]
        try:
            readable, _, _ = select.select(socks, [], [], wait)
        except (OSError, ValueError):  # a socket closed under us (the agent is stopping)
            return
        for s in readable:
            if s in self.lsocks:
                self._accept(s)
            else:
                p = next((p for p in self.pending if p.sock is s), None)
                if p is not None:
                    self._read(p)
        self._expire(time.monotonic())

    def _accept(self, lsock: socket.socket) -> None:
        try:
            conn, peer = lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # e.g. EMFILE: say so, keep serving
            self._log.warning("accept", f"cannot accept a connection: {e}")
            time.sleep(0.05)
            return
        self.offer(conn, peer_key(conn.family, peer))

    def offer(self, conn: socket.socket, key: PeerKey | None) -> bool:
        """Admit an accepted connection to the handshake table, or close it with a log line."""
        why = self.allow.check(key)
        if why is not None:
            self._refuse(conn, "denied", f"refused the connection from {describe_peer(key)}: {why}")
            return False
        if len(self.pending) >= self.max_pending:
            old = self.pending.pop(0)
            self._refuse(old.sock, "full", f"{self.max_pending} connections wait for their request: closed the "
                                           f"oldest, from {describe_peer(old.key)}")
        conn.setblocking(False)
        self.pending.append(Pending(conn, key, time.monotonic() + self.handshake_timeout))
        return True

    def _read(self, p: Pending) -> None:
        try:
            data = p.sock.recv(M.MSG_MAX_LEN)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._drop(p, "error", f"connection from {describe_peer(p.key)} failed before its request: {e}")
            return
        p.parser.feed(data)
        try:
            m = p.parser.next_message()
        except M.PeerProtocolError as e:
            self._drop(p, "bad", f"closed the connection from {describe_peer(p.key)}: not a trace request ({e})")
            return
        if m is M.NEED_DATA:
            if not data:  # closed without a request: a reachability probe, not worth a warning
                log.info("connection from %s closed without a request", describe_peer(p.key))
                self._drop(p, None, "")
            return
        self.pending.remove(p)
        if not opens_session(m):  # the handshake table's first step
            if not isinstance(m, M.NotSupp):
                with contextlib.suppress(OSError):
                    p.sock.send(M.encode(M.NotSupp()))
            self._refuse(p.sock, "unexpected", f"closed the connection from {describe_peer(p.key)}: it sent "
                                        f"{type(m).__name__} instead of a trace request (answered NOT_SUPP)")
            return
        if self.busy.is_set():
            self._refuse_busy(p.sock, p.key)
            return
        self.busy.set()
        self.session_peer = p.key
        p.sock.setblocking(True)
        self.requests.put(Request(p.sock, p.key, m, p.parser))

    def _expire(self, now: float) -> None:
        for p in [p for p in self.pending if p.deadline <= now]:
            self._drop(p, "silent", f"closed the connection from {describe_peer(p.key)}: no request within "
                                    f"{self.handshake_timeout:g} s")

    def _drop(self, p: Pending, kind: str | None, text: str) -> None:
        with contextlib.suppress(ValueError):
            self.pending.remove(p)
        if kind is None:
            p.sock.close()
        else:
            self._refuse(p.sock, kind, text)

    def _refuse_busy(self, conn: socket.socket, key: PeerKey | None) -> None:
        self._refuse(conn, "busy", f"busy with the session of {describe_peer(self.session_peer)}: closed the "
                                   f"connection from {describe_peer(key)} (one host session at a time)")

    def _refuse(self, conn: socket.socket, kind: str, text: str) -> None:
        self.refused += 1
        self._log.warning(kind, text)
        close_cleanly(conn)


def close_cleanly(conn: socket.socket) -> None:
    """Close so that the peer reads end-of-stream, not a reset: FIN first, then drop what it already sent
    (closing with unread bytes makes the kernel send RST, and the host would see "connection reset")."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        for _ in range(16):  # bounded: a peer that streams on does not keep us here
            if not conn.recv(1 << 16):
                break
    conn.close()

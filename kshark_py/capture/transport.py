"""Transports for the agent protocol: TCP, vsock (AF_VSOCK) and KVM FIFOs, behind one small interface.

Why one interface: the host and agent sessions only need "a message channel" (control and time sync)
and "per-CPU byte streams" (trace pages).  TCP and vsock are both stream sockets that differ only in
address family and how data ports are chosen (TCP: search from 1500 up, like trace-cmd; vsock: any
free port); FIFOs replace the per-CPU data sockets with named pipes
(``/var/lib/trace-cmd/virt/<guest>/trace-pipe-cpuN.out`` on the host, ``/dev/virtio-ports/trace-pipe-cpuN``
in the guest).  Every blocking wait here has a timeout: a peer that stops answering ends the session
with a clear error instead of hanging it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import select
import socket
import stat
import threading
import time
from dataclasses import dataclass

from . import msg as M
from .handshake import Handshake, Side, Stray, message_name

log = logging.getLogger("kshark_py.capture")

MSG_TIMEOUT = 5.0
"""Seconds to wait for the peer's next control message (trace-cmd's MSG_WAIT_MSEC)."""
TCP_DATA_PORT_BASE = 1500
VSOCK_DEFAULT_PORT = 823
VMADDR_CID_ANY = 0xFFFFFFFF
VMADDR_PORT_ANY = 0xFFFFFFFF
FIFO_HOST_DIR = "/var/lib/trace-cmd/virt"
FIFO_GUEST_DIR = "/dev/virtio-ports"
RECV_CHUNK = 1 << 16
SPLICE_CHUNK = 1 << 20
"""Bytes per splice from a data stream into the receiver's (enlarged) pipe."""
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def close_pipe(pipe: tuple[int, int]) -> None:
    """Close both ends of a splice pipe (best effort)."""
    for fd in pipe:
        with contextlib.suppress(OSError):
            os.close(fd)


class PeerError(Exception):
    """The peer closed, timed out or broke the protocol; the session ends with this message."""


@dataclass(frozen=True)
class Address:
    """Where an agent listens: TCP (host, port) or vsock (cid, port)."""

    family: str  # "tcp" or "vsock"
    host: str | int
    port: int

    def __str__(self) -> str:
        return f"{self.family}:{self.host}:{self.port}"

    def describe(self) -> str:
        """For messages: ``vsock CID 3 port 823`` / ``TCP 10.0.0.2:5000``."""
        if self.family == "vsock":
            return f"vsock CID {self.host} port {self.port}"
        return f"TCP {self.host}:{self.port}"


VSOCK_CONNECT_HINTS = {
    errno.ENODEV: "no vsock transport of this machine reaches that CID: its own CID needs vsock_loopback, "
                  "a guest's CID needs vhost_vsock",
    errno.ECONNRESET: "refused: nothing listens on that port there; is the agent running?",
    errno.ECONNREFUSED: "refused: nothing listens on that port there; is the agent running?",
    errno.ETIMEDOUT: "no answer: no running VM has that CID, or it does not answer on vsock",
    errno.EHOSTUNREACH: "no route to that CID",
}
"""Why a vsock connect() failed, in words (the kernel's errnos are terse: vsock refuses with ECONNRESET)."""


def vsock_family() -> int:
    """``socket.AF_VSOCK``, or OSError(EAFNOSUPPORT) when this Python/kernel has none."""
    fam = getattr(socket, "AF_VSOCK", None)
    if fam is None:
        raise OSError(errno.EAFNOSUPPORT, "AF_VSOCK is not supported by this Python")
    return fam


def check_port(family: str, port: int, *, listening: bool = False) -> None:
    """ValueError unless ``port`` fits the family: vsock 32 bits (0xFFFFFFFF: any), TCP 16 bits.

    Why: Python packs a vsock address with no range check, so 2**32 + 5 would silently become port 5.
    """
    low = 0 if listening or family == "vsock" else 1
    high = 0xFFFFFFFF if family == "vsock" else 0xFFFF
    if not low <= port <= high:
        raise ValueError(f"{'vsock' if family == 'vsock' else 'TCP'} port {port} out of range ({low}..{high})")


PeerKey = str | int
"""A peer as the allow-lists compare it: a normalized IP string (IPv4-mapped IPv6 as IPv4) or a CID."""


def peer_key(family: int, peer: object) -> PeerKey | None:
    """The allow-list key of a socket peer address; None for families without one (socketpairs)."""
    if family == getattr(socket, "AF_VSOCK", -1):
        return int(peer[0])  # type: ignore[index]
    if family in (socket.AF_INET, socket.AF_INET6):
        return normalize_ip(str(peer[0]))  # type: ignore[index]
    return None


def normalize_ip(text: str) -> str:
    """``::ffff:1.2.3.4`` -> ``1.2.3.4``, ``fe80::1%eth0`` -> ``fe80::1``, IPv6 in its compressed form."""
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def local_address(sock: socket.socket) -> str | None:
    """The local IP a connected TCP socket uses (with ``%scope`` for link-local IPv6), else None."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    name = sock.getsockname()
    addr = str(name[0])
    if sock.family == socket.AF_INET6:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        if ip.ipv4_mapped is not None:  # on a dual-stack "::" listener: bind the IPv4 address itself
            return str(ip.ipv4_mapped)
        if name[3] and "%" not in addr:
            try:
                addr = f"{addr}%{socket.if_indextoname(name[3])}"
            except OSError:
                addr = f"{addr}%{name[3]}"
    return addr



# --- sockets --------------------------------------------------------------------------------------------
def connect(addr: Address, timeout: float = MSG_TIMEOUT) -> socket.socket:
    """A connected stream socket to ``addr`` (raises PeerError with the reason), within ``timeout`` s.

    vsock: the kernel also gives up after its own connect timeout (2 s by default, as for trace-cmd).
    """
    s = None
    try:
        check_port(addr.family, addr.port)
        if addr.family == "vsock":
            cid = int(addr.host)
            if not 0 <= cid <= VMADDR_CID_ANY:
                raise ValueError(f"vsock CID {cid} out of range (0..{VMADDR_CID_ANY})")
            s = socket.socket(vsock_family(), socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect((cid, addr.port))
        else:
            s = socket.create_connection((str(addr.host), addr.port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, ValueError, OverflowError) as e:
        if s is not None:
            s.close()
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        hint = VSOCK_CONNECT_HINTS.get(getattr(e, "errno", None) or 0) if addr.family == "vsock" else None
        if isinstance(e, TimeoutError) and addr.family == "vsock":
            hint = VSOCK_CONNECT_HINTS[errno.ETIMEDOUT]
        raise PeerError(f"cannot connect to {addr.describe()}: {reason}" + (f" ({hint})" if hint else "")) from e
    return s


def listen(family: str, port: int, host: str = "", backlog: int = 8) -> socket.socket:
    """A listening stream socket: vsock on any CID, TCP on ``host`` (an IPv4 or IPv6 address; "" is every
    IPv4 address, "::" every address of both families).  ``backlog``: connections the kernel queues for
    accept(); beyond it a client's SYN is dropped and its connect() waits a second for the retry."""
    check_port(family, port, listening=True)
    if family == "vsock":
        fam, addr = vsock_family(), (VMADDR_CID_ANY, port)
    else:
        fam, addr = tcp_sockaddr(host, port)
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if family != "vsock":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:  # "::" takes IPv4 too (peers then look like ::ffff:a.b.c.d)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(ipaddress.ip_address(addr[0].split("%")[0])
                                                                      != ipaddress.IPv6Address("::")))
        s.bind(addr)
        s.listen(backlog)
    except OSError:
        s.close()
        raise
    return s


def tcp_sockaddr(host: str, port: int) -> tuple[int, tuple]:
    """(address family, sockaddr) to bind ``host``:``port``; a link-local IPv6 needs ``%IFACE``."""
    if not host:
        return socket.AF_INET, ("", port)
    try:
        fam, _t, _p, _c, sa = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                                 socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host}: {e.strerror or e}") from e
    return fam, sa


def listen_data_port(family: str, host: str = "") -> tuple[socket.socket, int]:
    """A listening socket for one CPU's data: TCP ports from 1500 up (as trace-cmd), vsock any port."""
    if family == "vsock":
        s = listen("vsock", VMADDR_PORT_ANY)
        return s, s.getsockname()[1]
    for port in range(TCP_DATA_PORT_BASE, 65536):
        try:
            return listen("tcp", port, host), port
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no free TCP port from 1500 up")


def accept(lsock: socket.socket, timeout: float, allowed: set[PeerKey] | None = None,
           watch: socket.socket | None = None) -> socket.socket:
    """Accept one connection within ``timeout`` from an allowed peer (others are closed and logged).

    ``allowed`` holds :func:`peer_key` values: IPs for TCP, CIDs for vsock.  ``watch``: the session's
    control connection; if the host closes it meanwhile, waiting on is pointless (PeerError at once).
    """
    deadline = time.monotonic() + timeout
    port = lsock.getsockname()[1]
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PeerError(f"no connection on port {port} within {timeout:g} s")
        if watch is not None:
            r, _, _ = select.select([lsock, watch], [], [], left)
            if watch in r:
                try:
                    peek = watch.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    peek = b"?"
                except OSError as e:
                    raise PeerError(f"the host's control connection failed while port {port} waited: {e}") from e
                if not peek:
                    raise PeerError(f"the host closed the session while port {port} waited for its connection")
                watch = None  # it sent something (read later): stop watching
            if lsock not in r:
                continue
            left = max(deadline - time.monotonic(), 0.001)
        lsock.settimeout(left)
        try:
            conn, peer = lsock.accept()
        except TimeoutError as e:
            raise PeerError(f"no connection on port {port} within {timeout:g} s") from e
        key = peer_key(conn.family, peer)
        if allowed is not None and key not in allowed:
            log.warning("refused connection from %s on port %d (only %s allowed)", key, port,
                        ", ".join(map(str, sorted(allowed, key=str))))
            conn.close()
            continue
        return conn


# --- message channel -----------------------------------------------------------------------------------
class Channel:
    """Messages over one stream socket, with a per-message receive timeout."""

    def __init__(self, sock: socket.socket, name: str, timeout: float = MSG_TIMEOUT) -> None:
        self.sock = sock
        self.name = name
        self.timeout = timeout
        self.conn = M.Connection()
        self._lock = threading.Lock()

    def send(self, message: M.Message) -> None:
        data = M.encode(message)
        with self._lock:
            try:
                self.sock.settimeout(self.timeout)
                self.sock.sendall(data)
            except OSError as e:
                raise PeerError(f"{self.name}: send failed: {e}") from e

    def recv(self, timeout: float | None = None) -> M.Message:
        """The next message; PeerError on timeout, close or protocol violation."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                m = self.conn.next_message()
            except M.PeerProtocolError as e:
                raise PeerError(f"{self.name}: bad message from peer: {e}") from e
            if m is not M.NEED_DATA:
                return m  # type: ignore[return-value]
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError(f"{self.name}: peer sent nothing for {wait:.0f} s")
            self.sock.settimeout(left)
            self._before_recv()
            try:
                data = self.sock.recv(RECV_CHUNK)
            except TimeoutError as e:
                raise PeerError(f"{self.name}: peer sent nothing for {wait:.0f} s") from e
            except OSError as e:
                raise PeerError(f"{self.name}: receive failed: {e}") from e
            self.conn.feed(data)
            if not data:
                try:
                    m = self.conn.next_message()
                except M.PeerProtocolError as e:
                    raise PeerError(f"{self.name}: {e}") from e
                if m is M.NEED_DATA:
                    raise PeerError(f"{self.name}: peer closed the connection")
                return m  # type: ignore[return-value]

    def _before_recv(self) -> None:
        """Hook before each socket read (the time-sync channel re-arms TCP_QUICKACK here)."""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class SessionChannel(Channel):
    """The control connection of an agent session: every message passes :mod:`.handshake`'s table.

    :meth:`send` refuses (:class:`~.msg.LocalProtocolError`, nothing sent) what the table does not let
    this side send now; :meth:`recv` returns the next message that moves the conversation on, answers
    or skips the ones the state lets pass, and raises :class:`~.handshake.HandshakeError` for one out of
    order, so a confused peer ends the session with one line instead of leaving it waiting.
    """

    def __init__(self, sock: socket.socket, name: str, side: Side, timeout: float = MSG_TIMEOUT) -> None:
        super().__init__(sock, name, timeout)
        self.handshake = Handshake(side)

    def send(self, message: M.Message) -> None:
        self.handshake.send(message)
        super().send(message)

    def send_stream(self, data: bytes) -> None:
        """A byte stream as SEND_DATA messages followed by FIN_DATA."""
        for m in M.send_data_messages(data):
            self.send(m)
        self.send(M.FinData())

    def answer_not_supp(self) -> None:
        """NOT_SUPP in answer to a message out of order (outside the table: it changes no state)."""
        super().send(M.NotSupp())

    def recv(self, timeout: float | None = None) -> M.Message:
        """The next message the table accepts (each wait up to ``timeout``); PeerError as :meth:`Channel.recv`."""
        while True:
            m = super().recv(timeout)
            stray = self.handshake.receive(m)
            if stray is None:
                return m
            if stray is Stray.ANSWER_NOT_SUPP:
                self.answer_not_supp()
            else:
                log.warning("%s: ignoring %s while waiting for %s", self.name, message_name(m),
                            self.handshake.state.value)

    def abort(self) -> None:
        """CLOSE whatever the state (the host gives up on a guest), then close: outside the table."""
        self.handshake.abandon()
        with contextlib.suppress(PeerError):
            super().send(M.Close())
        self.close()


# --- per-CPU receive streams (host side) ---------------------------------------------------------------
class StreamReceiver(threading.Thread):
    """Copies one CPU's page stream (socket or FIFO) into a file until EOF after the session stops.

    While recording, a data stream may stay silent for as long as the guest CPU produces no events,
    so there is no idle timeout then; once :meth:`finish` is called, the stream must end within
    ``drain_timeout`` seconds or is cut off (what arrived stays in the file).
    """

    def __init__(self, cpu: int, path: str, *, sock: socket.socket | None = None, fd: int | None = None,
                 drain_timeout: float = 10.0) -> None:
        super().__init__(name=f"kshark-recv-cpu{cpu}", daemon=True)
        self.cpu = cpu
        self.path = path
        self.sock = sock
        self.fd = fd
        self.bytes = 0
        self.error: str | None = None
        self.drain_timeout = drain_timeout
        self._deadline: float | None = None
        self._is_fifo = fd is not None

    def finish(self) -> None:
        self._deadline = time.monotonic() + self.drain_timeout

    def _read(self) -> bytes | None:
        """Bytes, b"" at end of stream, None if nothing is available yet."""
        src = self.sock if self.sock is not None else self.fd
        r, _, _ = select.select([src], [], [], 0.2)
        if not r:
            return None
        if self.sock is not None:
            return self.sock.recv(RECV_CHUNK)
        try:
            return os.read(self.fd, RECV_CHUNK)  # type: ignore[arg-type]
        except BlockingIOError:
            return None

    def _splice_in(self, pipe_w: int) -> int | None:
        """Splice what is available into our pipe: bytes moved, 0 at end of stream, None if nothing yet."""
        src = self.sock.fileno() if self.sock is not None else self.fd
        r, _, _ = select.select([src], [], [], 0.2)
        if not r:
            return None
        try:
            return os.splice(src, pipe_w, SPLICE_CHUNK, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)  # type: ignore[arg-type]
        except (BlockingIOError, InterruptedError):
            return None

    def _make_pipe(self) -> tuple[int, int] | None:
        """A pipe for socket/FIFO -> pipe -> file splicing (pages never enter Python), or None."""
        if not hasattr(os, "splice"):
            return None
        pr, pw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(pw, F_SETPIPE_SZ, SPLICE_CHUNK)
        return pr, pw

    def _pipe_to_file(self, pr: int, out: int, n: int) -> None:
        while n:
            try:
                m = os.splice(pr, out, n, flags=os.SPLICE_F_MOVE)
            except InterruptedError:
                continue
            if m == 0:
                raise OSError(errno.EIO, "splice to the output file moved nothing")
            n -= m

    def run(self) -> None:
        pipe = None
        try:
            pipe = self._make_pipe()
            with open(self.path, "wb", buffering=0) as out:
                while True:
                    if self._deadline is not None and time.monotonic() > self._deadline:
                        self.error = f"CPU {self.cpu}: stream did not end within {self.drain_timeout:.0f} s"
                        log.error("%s; keeping the %d bytes received", self.error, self.bytes)
                        break
                    if pipe is not None:
                        try:
                            n = self._splice_in(pipe[1])
                        except OSError as e:
                            if e.errno != errno.EINVAL:
                                raise
                            log.info("CPU %d: splice from the stream unavailable (%s): copying", self.cpu, e)
                            close_pipe(pipe)
                            pipe = None
                            continue
                        if n is None:
                            continue
                        if n:
                            self._pipe_to_file(pipe[0], out.fileno(), n)
                            self.bytes += n
                            continue
                        data = b""
                    else:
                        data = self._read()
                        if data is None:
                            continue
                    if not data:
                        if self._is_fifo and self._deadline is None:
                            time.sleep(0.05)  # FIFO without a writer yet (or between writers)
                            continue
                        break
                    out.write(data)
                    self.bytes += len(data)
        except OSError as e:
            self.error = f"CPU {self.cpu}: {e}"
            log.error("data stream %s", self.error)
        finally:
            if pipe is not None:
                close_pipe(pipe)
            if self.sock is not None:
                self.sock.close()
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.fd)


# --- FIFOs ---------------------------------------------------------------------------------------------
def host_fifos(guest: str) -> list[str]:
    """The guest's host-side ``.out`` FIFOs that exist, CPU 0 up to the first gap."""
    out = []
    cpu = 0
    while True:
        p = os.path.join(FIFO_HOST_DIR, guest, f"trace-pipe-cpu{cpu}.out")
        try:
            if not stat.S_ISFIFO(os.stat(p).st_mode):
                break
        except OSError:
            break
        out.append(p)
        cpu += 1
    return out


def open_host_fifo(path: str) -> int:
    """Open a host FIFO for reading without waiting for the writer (the agent opens it later)."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def open_guest_fifos(ncpus: int) -> list[int] | None:
    """Open ``/dev/virtio-ports/trace-pipe-cpuN`` for every CPU, or None (then sockets are used)."""
    fds: list[int] = []
    try:
        for cpu in range(ncpus):
            fd = os.open(os.path.join(FIFO_GUEST_DIR, f"trace-pipe-cpu{cpu}"), os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            fds.append(fd)
        return fds
    except OSError as e:
        log.warning("FIFOs requested but not usable (%s): using sockets", e)
        for fd in fds:
            os.close(fd)
        return None

"""trace-cmd's agent message protocol ("V3", `lib/trace-cmd/trace-msg.c`) as a sans-I/O codec.

Why sans-I/O (h11 style): the same parser must serve vsock, TCP and (for control) any byte stream,
from blocking sockets with timeouts, from tests that feed captured bytes one at a time, and from a
fuzzer.  The codec never reads or writes a file descriptor: :meth:`Connection.feed` takes bytes,
:meth:`Connection.next_message` returns a typed message or :data:`NEED_DATA`, :func:`encode` turns a
message into bytes.

Facts: shared/spec/agent-protocol.md §1-2 and §7.  Framing is a 12-byte big-endian header
``(size, cmd, cmd_size)``, a fixed per-command struct of ``cmd_size`` bytes and a variable payload.
Every count and length the peer sends is checked against the bytes actually present and against
sane maxima before anything is allocated; anything invalid raises :class:`PeerProtocolError`, while
asking the codec to encode something trace-cmd could not parse raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

# --- framing constants -----------------------------------------------------------------------------
MSG_MAX_LEN: Final = 8192
"""Receivers reject larger messages (``MSG_MAX_LEN``): the whole protocol fits in 8 KiB frames."""
HEADER = struct.Struct("!III")  # size, cmd, cmd_size
MSG_HDR_LEN: Final = HEADER.size
MSG_MAX_DATA_LEN: Final = MSG_MAX_LEN - MSG_HDR_LEN
"""Largest SEND_DATA payload (8180)."""
TSYNC_PNAME_LENGTH: Final = 16

MAX_CPUS: Final = 8192
"""Bound on CPU counts from the peer (ports arrays are sized by it in trace-cmd; here it only bounds work)."""
MAX_ARGS: Final = 4096
MSG_TRACE_USE_FIFOS: Final = 1

TRACE_REQUEST_ARGS: Final = 0
TRACE_REQUEST_TSYNC_PROTOS: Final = 1


class Cmd(enum.IntEnum):
    """Command ids of ``MSG_MAP``."""

    CLOSE = 0
    TINIT = 1
    RINIT = 2
    SEND_DATA = 3
    FIN_DATA = 4
    NOT_SUPP = 5
    TRACE_REQ = 6
    TRACE_RESP = 7
    CLOSE_RESP = 8
    TIME_SYNC = 9
    TRACE_PROXY = 10
    CONT = 11


_TINIT = struct.Struct("!III")  # cpus, page_size, opt_num
_RINIT = struct.Struct("!I")  # cpus
_TRACE_REQ = struct.Struct("!IIQ")  # flags, argc (unused, 0), trace_id
_TRACE_PROXY = struct.Struct("!IIQII")  # trace_req + cpus + siblings
_TRACE_RESP = struct.Struct(f"!IIIQ{TSYNC_PNAME_LENGTH}sI")  # flags, cpus, page_size, trace_id, proto, port
_TSYNC = struct.Struct(f"!{TSYNC_PNAME_LENGTH}sI")  # protocol name, sub-command
_U32 = struct.Struct("!I")
_PARAM = struct.Struct("!II")  # param id, length

CMD_SIZES: Final[dict[Cmd, int]] = {
    Cmd.CLOSE: 0, Cmd.TINIT: _TINIT.size, Cmd.RINIT: _RINIT.size, Cmd.SEND_DATA: 0, Cmd.FIN_DATA: 0,
    Cmd.NOT_SUPP: 0, Cmd.TRACE_REQ: _TRACE_REQ.size, Cmd.TRACE_RESP: _TRACE_RESP.size, Cmd.CLOSE_RESP: 0,
    Cmd.TIME_SYNC: _TSYNC.size, Cmd.TRACE_PROXY: _TRACE_PROXY.size, Cmd.CONT: 0,
}


# --- errors ----------------------------------------------------------------------------------------
class ProtocolError(Exception):
    """Base of the codec's errors."""


class PeerProtocolError(ProtocolError):
    """The peer sent bytes that are not a valid message: the connection should be closed.

    ``cmd`` is the command id when the header was readable (None otherwise).
    """

    def __init__(self, message: str, cmd: int | None = None) -> None:
        super().__init__(message)
        self.cmd = cmd


class LocalProtocolError(ProtocolError):
    """We asked to encode something the protocol cannot carry (a bug on our side, not the peer's)."""


class _NeedData:
    """Sentinel type: the buffered bytes do not yet hold a whole message."""

    _instance: _NeedData | None = None

    def __new__(cls) -> _NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


# --- messages --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Close:
    """Host -> agent: stop recording (also the listen protocol's end)."""


@dataclass(frozen=True)
class CloseResp:
    """Agent -> host: recorders stopped and flushed."""


@dataclass(frozen=True)
class FinData:
    """End of a SEND_DATA stream."""


@dataclass(frozen=True)
class NotSupp:
    """Reply to an unexpected message (never sent in reply to a NOT_SUPP)."""


@dataclass(frozen=True)
class Cont:
    """Proxy mode: "ready for the rest"."""


@dataclass(frozen=True)
class SendData:
    """A chunk (at most 8180 bytes) of a byte stream, e.g. the guest's trace file metadata."""

    data: bytes


@dataclass(frozen=True)
class TInit:
    """listen protocol client -> server: CPU count, page size, transport options ("tcp"/"vsock")."""

    cpus: int
    page_size: int
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class RInit:
    """listen protocol server -> client: one data port per CPU."""

    ports: tuple[int, ...]


@dataclass(frozen=True)
class TraceReq:
    """Host -> agent: record with these ``trace-cmd record`` arguments.

    ``tsync_protos`` is None when the host offers no time sync at all (``--tsync-interval -1``), which
    is distinct on the wire from an empty list.
    """

    flags: int
    trace_id: int
    args: tuple[str, ...] | None = None
    tsync_protos: tuple[str, ...] | None = None
    argc: int = 0

    @property
    def use_fifos(self) -> bool:
        return bool(self.flags & MSG_TRACE_USE_FIFOS)


@dataclass(frozen=True)
class TraceProxy:
    """Guest recorder -> host proxy agent (``record --proxy``): a TRACE_REQ plus CPU and sibling counts."""

    flags: int
    trace_id: int
    cpus: int
    siblings: int
    args: tuple[str, ...] | None = None
    tsync_protos: tuple[str, ...] | None = None
    argc: int = 0


@dataclass(frozen=True)
class TraceResp:
    """Agent -> host: guest CPU count (one data port per CPU), page size, guest trace id, time sync."""

    flags: int
    page_size: int
    trace_id: int
    tsync_proto: str
    tsync_port: int
    ports: tuple[int, ...]

    @property
    def cpus(self) -> int:
        return len(self.ports)

    @property
    def use_fifos(self) -> bool:
        return bool(self.flags & MSG_TRACE_USE_FIFOS)


@dataclass(frozen=True)
class TimeSync:
    """One time-sync packet: protocol name ("none", "ptp", "kvm"), sub-command, protocol payload.

    The payload stays bytes here; :mod:`kshark_py.capture.tsync_msg` types it per protocol.
    """

    proto: str
    command: int
    payload: bytes = b""


Message = (Close | TInit | RInit | SendData | FinData | NotSupp | TraceReq | TraceResp | CloseResp
           | TimeSync | TraceProxy | Cont)


# --- helpers ---------------------------------------------------------------------------------------
def _cstrings(buf: bytes, count: int, what: str, cmd: int) -> tuple[list[str], int]:
    """``count`` NUL-terminated strings from the start of ``buf``; returns them and the bytes used."""
    out: list[str] = []
    pos = 0
    for _ in range(count):
        nul = buf.find(b"\0", pos)
        if nul < 0:
            raise PeerProtocolError(f"{what}: string {len(out)} of {count} is not NUL-terminated "
                                    f"within the payload", cmd)
        out.append(buf[pos:nul].decode("utf-8", "surrogateescape"))
        pos = nul + 1
    return out, pos


def _ports(buf: bytes, count: int, what: str, cmd: int) -> tuple[int, ...]:
    if count > MAX_CPUS:
        raise PeerProtocolError(f"{what}: {count} CPUs is over the limit {MAX_CPUS}", cmd)
    # each port needs at least 2 bytes ("0\0"): check before building anything
    if count * 2 > len(buf):
        raise PeerProtocolError(f"{what}: {count} ports do not fit in {len(buf)} payload bytes", cmd)
    texts, used = _cstrings(buf, count, what, cmd)
    if used != len(buf):
        raise PeerProtocolError(f"{what}: {len(buf) - used} bytes after the {count} ports", cmd)
    ports = []
    for t in texts:
        # ASCII digits only, as trace-cmd writes them ("%u"): str.isdigit() alone also takes "²" (which int()
        # rejects) and other scripts' digits (which int() reads, so the port would not re-encode as received)
        if not (t.isascii() and t.isdigit()) or len(t) > 10 or int(t) > 0xFFFFFFFF:
            raise PeerProtocolError(f"{what}: bad port number {t!r}", cmd)
        ports.append(int(t))
    return tuple(ports)


def _enc_str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogateescape")
    if b"\0" in b:
        raise LocalProtocolError(f"string {s!r} contains a NUL byte")
    return b + b"\0"


def _enc_ports(ports: tuple[int, ...]) -> bytes:
    for p in ports:
        if not 0 <= p <= 0xFFFFFFFF:
            raise LocalProtocolError(f"port {p} out of range")
    return b"".join(_enc_str(str(p)) for p in ports)


def _proto_name(raw: bytes, cmd: int) -> str:
    nul = raw.find(b"\0")
    name = raw if nul < 0 else raw[:nul]
    return name.decode("ascii", "surrogateescape")


def _enc_proto_name(name: str) -> bytes:
    """A time-sync protocol name in the decoders' encoding (ASCII, other bytes as surrogate escapes)."""
    try:
        b = name.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"time-sync protocol name {name!r} is not ASCII") from None
    if len(b) > TSYNC_PNAME_LENGTH or b"\0" in b:
        raise LocalProtocolError(f"time-sync protocol name {name!r} longer than {TSYNC_PNAME_LENGTH} bytes "
                                 "or containing a NUL")
    return b


def _parse_req_params(buf: bytes, cmd: int) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """TRACE_REQ/TRACE_PROXY parameter list: (args, tsync_protos); unknown ids are skipped like trace-cmd."""
    args: tuple[str, ...] | None = None
    protos: tuple[str, ...] | None = None
    pos = 0
    while len(buf) - pos > _PARAM.size:
        pid, plen = _PARAM.unpack_from(buf, pos)
        pos += _PARAM.size
        if plen > len(buf) - pos:
            raise PeerProtocolError(f"TRACE_REQ parameter {pid}: length {plen} over the {len(buf) - pos} "
                                    "bytes left", cmd)
        val = buf[pos:pos + plen]
        pos += plen
        if pid == TRACE_REQUEST_ARGS:
            if plen <= 4 or val[-1] != 0:
                raise PeerProtocolError("TRACE_REQ arguments: too short or not NUL-terminated", cmd)
            argc = _U32.unpack_from(val, 0)[0]
            body = val[4:]
            if argc > MAX_ARGS or argc > len(body):
                raise PeerProtocolError(f"TRACE_REQ arguments: argc {argc} does not fit {len(body)} bytes", cmd)
            texts, used = _cstrings(body, argc, "TRACE_REQ arguments", cmd)
            if used != len(body):
                raise PeerProtocolError(f"TRACE_REQ arguments: {len(body) - used} bytes after {argc} strings", cmd)
            args = tuple(texts)
        elif pid == TRACE_REQUEST_TSYNC_PROTOS:
            # names, each NUL-terminated, then one extra NUL
            if plen < 1 or val[-1] != 0:
                raise PeerProtocolError("TRACE_REQ time-sync protocols: not NUL-terminated", cmd)
            names = val[:-1].split(b"\0")
            if names and names[-1] == b"":
                names.pop()
            else:
                raise PeerProtocolError("TRACE_REQ time-sync protocols: missing the final extra NUL", cmd)
            if any(not n or len(n) > TSYNC_PNAME_LENGTH for n in names):
                raise PeerProtocolError("TRACE_REQ time-sync protocols: empty or over-long name", cmd)
            protos = tuple(n.decode("ascii", "surrogateescape") for n in names)
    if pos != len(buf):
        raise PeerProtocolError(f"TRACE_REQ: {len(buf) - pos} stray bytes after the parameters", cmd)
    return args, protos


def _enc_req_params(args: tuple[str, ...] | None, protos: tuple[str, ...] | None) -> bytes:
    out = bytearray()
    if args:  # trace-cmd sends no ARGS parameter for an empty argument list
        if len(args) > MAX_ARGS:
            raise LocalProtocolError(f"{len(args)} arguments is over the limit {MAX_ARGS}")
        body = _U32.pack(len(args)) + b"".join(_enc_str(a) for a in args)
        out += _PARAM.pack(TRACE_REQUEST_ARGS, len(body)) + body
    if protos is not None:
        # the same encoding as _parse_req_params decodes with: a received name with a non-ASCII byte
        # (a surrogate escape) re-encodes to the bytes it came from
        names = [_enc_proto_name(p) for p in protos]
        if not all(names):
            raise LocalProtocolError("empty time-sync protocol name")
        body = b"".join(n + b"\0" for n in names) + b"\0"
        out += _PARAM.pack(TRACE_REQUEST_TSYNC_PROTOS, len(body)) + body
    return bytes(out)


# --- decoding --------------------------------------------------------------------------------------
def decode(frame: bytes) -> Message:
    """One whole message (header included) -> typed message; raises :class:`PeerProtocolError`."""
    if len(frame) < MSG_HDR_LEN:
        raise PeerProtocolError(f"message of {len(frame)} bytes is shorter than its header")
    size, cmd, cmd_size = HEADER.unpack_from(frame, 0)
    if size != len(frame):
        raise PeerProtocolError(f"header says {size} bytes, frame has {len(frame)}", cmd)
    _check_header(size, cmd, cmd_size)
    known = CMD_SIZES[Cmd(cmd)]
    # trace-cmd reads min(cmd_size, known) struct bytes (the rest of the struct stays zero) and
    # discards struct bytes beyond what it knows: do the same.
    fixed = frame[MSG_HDR_LEN:MSG_HDR_LEN + min(cmd_size, known)].ljust(known, b"\0")
    payload = bytes(frame[MSG_HDR_LEN + cmd_size:])
    return _decode_body(Cmd(cmd), fixed, payload)


def _check_header(size: int, cmd: int, cmd_size: int) -> None:
    if size > MSG_MAX_LEN:
        raise PeerProtocolError(f"message size {size} over the maximum {MSG_MAX_LEN}", cmd)
    if size < MSG_HDR_LEN:
        raise PeerProtocolError(f"message size {size} under the header size {MSG_HDR_LEN}", cmd)
    if cmd >= len(Cmd):
        raise PeerProtocolError(f"unknown command {cmd}", cmd)
    if cmd_size > size - MSG_HDR_LEN:
        raise PeerProtocolError(f"command struct size {cmd_size} over the {size - MSG_HDR_LEN} bytes after "
                                "the header", cmd)


def _decode_body(cmd: Cmd, fixed: bytes, payload: bytes) -> Message:
    simple = {Cmd.CLOSE: Close, Cmd.FIN_DATA: FinData, Cmd.NOT_SUPP: NotSupp, Cmd.CLOSE_RESP: CloseResp,
              Cmd.CONT: Cont}
    if cmd in simple:
        if payload:
            raise PeerProtocolError(f"{cmd.name} carries {len(payload)} unexpected payload bytes", cmd)
        return simple[cmd]()
    if cmd == Cmd.SEND_DATA:
        return SendData(payload)
    if cmd == Cmd.TINIT:
        cpus, page_size, opt_num = _TINIT.unpack(fixed)
        if cpus > MAX_CPUS or cpus == 0:
            raise PeerProtocolError(f"TINIT: bad CPU count {cpus}", cmd)
        if page_size == 0 or page_size > 0x7FFFFFFF:
            raise PeerProtocolError(f"TINIT: bad page size {page_size}", cmd)
        if opt_num > len(payload):
            raise PeerProtocolError(f"TINIT: {opt_num} options do not fit {len(payload)} bytes", cmd)
        opts, used = _cstrings(payload, opt_num, "TINIT options", cmd)
        if used != len(payload):
            raise PeerProtocolError(f"TINIT: {len(payload) - used} bytes after the options", cmd)
        return TInit(cpus, page_size, tuple(opts))
    if cmd == Cmd.RINIT:
        (cpus,) = _RINIT.unpack(fixed)
        if cpus == 0:  # trace-cmd rejects an RINIT without ports (empty payload); RInit(()) cannot be sent
            raise PeerProtocolError("RINIT: zero CPUs", cmd)
        return RInit(_ports(payload, cpus, "RINIT", cmd))
    if cmd in (Cmd.TRACE_REQ, Cmd.TRACE_PROXY):
        args, protos = _parse_req_params(payload, cmd)
        if cmd == Cmd.TRACE_REQ:
            flags, argc, trace_id = _TRACE_REQ.unpack(fixed)
            return TraceReq(flags, trace_id, args, protos, argc)
        flags, argc, trace_id, cpus, siblings = _TRACE_PROXY.unpack(fixed)
        if cpus > MAX_CPUS:
            raise PeerProtocolError(f"TRACE_PROXY: {cpus} CPUs is over the limit", cmd)
        return TraceProxy(flags, trace_id, cpus, siblings, args, protos, argc)
    if cmd == Cmd.TRACE_RESP:
        flags, cpus, page_size, trace_id, proto, port = _TRACE_RESP.unpack(fixed)
        if cpus == 0:
            raise PeerProtocolError("TRACE_RESP: zero CPUs", cmd)
        if page_size == 0 or page_size > 0x7FFFFFFF:
            raise PeerProtocolError(f"TRACE_RESP: bad page size {page_size}", cmd)
        return TraceResp(flags, page_size, trace_id, _proto_name(proto, cmd), port,
                         _ports(payload, cpus, "TRACE_RESP", cmd))
    if cmd == Cmd.TIME_SYNC:
        proto, sub = _TSYNC.unpack(fixed)
        return TimeSync(_proto_name(proto, cmd), sub, payload)
    raise AssertionError(cmd)  # pragma: no cover - every Cmd handled above


# --- encoding --------------------------------------------------------------------------------------
def _frame(cmd: Cmd, fixed: bytes, payload: bytes) -> bytes:
    size = MSG_HDR_LEN + len(fixed) + len(payload)
    if size > MSG_MAX_LEN:
        raise LocalProtocolError(f"{cmd.name} message of {size} bytes is over the maximum {MSG_MAX_LEN}")
    return HEADER.pack(size, cmd, len(fixed)) + fixed + payload


def _u32(v: int, what: str) -> int:
    if not 0 <= v <= 0xFFFFFFFF:
        raise LocalProtocolError(f"{what} {v} does not fit 32 bits")
    return v


def _u64(v: int, what: str) -> int:
    if not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
        raise LocalProtocolError(f"{what} {v} does not fit 64 bits")
    return v


def encode(msg: Message) -> bytes:
    """A typed message -> its bytes on the wire; raises :class:`LocalProtocolError` for unsendable values."""
    match msg:
        case Close():
            return _frame(Cmd.CLOSE, b"", b"")
        case CloseResp():
            return _frame(Cmd.CLOSE_RESP, b"", b"")
        case FinData():
            return _frame(Cmd.FIN_DATA, b"", b"")
        case NotSupp():
            return _frame(Cmd.NOT_SUPP, b"", b"")
        case Cont():
            return _frame(Cmd.CONT, b"", b"")
        case SendData(data):
            if len(data) > MSG_MAX_DATA_LEN:
                raise LocalProtocolError(f"SEND_DATA of {len(data)} bytes: split at {MSG_MAX_DATA_LEN} "
                                         "(see send_data_messages)")
            return _frame(Cmd.SEND_DATA, b"", bytes(data))
        case TInit(cpus, page_size, options):
            if not 0 < cpus <= MAX_CPUS or not 0 < page_size <= 0x7FFFFFFF:
                raise LocalProtocolError(f"TINIT: bad cpus {cpus} or page size {page_size}")
            return _frame(Cmd.TINIT, _TINIT.pack(cpus, page_size, len(options)),
                          b"".join(_enc_str(o) for o in options))
        case RInit(ports):
            if not 0 < len(ports) <= MAX_CPUS:
                raise LocalProtocolError(f"RINIT: {len(ports)} ports")
            return _frame(Cmd.RINIT, _RINIT.pack(len(ports)), _enc_ports(ports))
        case TraceReq(flags, trace_id, args, protos, argc):
            fixed = _TRACE_REQ.pack(_u32(flags, "flags"), _u32(argc, "argc"), _u64(trace_id, "trace id"))
            return _frame(Cmd.TRACE_REQ, fixed, _enc_req_params(args, protos))
        case TraceProxy(flags, trace_id, cpus, siblings, args, protos, argc):
            fixed = _TRACE_PROXY.pack(_u32(flags, "flags"), _u32(argc, "argc"), _u64(trace_id, "trace id"),
                                      _u32(cpus, "cpus"), _u32(siblings, "siblings"))
            return _frame(Cmd.TRACE_PROXY, fixed, _enc_req_params(args, protos))
        case TraceResp(flags, page_size, trace_id, proto, port, ports):
            if not 0 < len(ports) <= MAX_CPUS or not 0 < page_size <= 0x7FFFFFFF:
                raise LocalProtocolError(f"TRACE_RESP: {len(ports)} ports, page size {page_size}")
            fixed = _TRACE_RESP.pack(_u32(flags, "flags"), len(ports), page_size, _u64(trace_id, "trace id"),
                                     _enc_proto_name(proto), _u32(port, "time-sync port"))
            return _frame(Cmd.TRACE_RESP, fixed, _enc_ports(ports))
        case TimeSync(proto, command, payload):
            return _frame(Cmd.TIME_SYNC, _TSYNC.pack(_enc_proto_name(proto), _u32(command, "sub-command")),
                          bytes(payload))
    raise LocalProtocolError(f"not a message: {msg!r}")


def send_data_messages(data: bytes) -> list[SendData]:
    """Split a byte stream into SEND_DATA messages of at most 8180 bytes, as trace-cmd does."""
    mv = memoryview(data)
    return [SendData(bytes(mv[i:i + MSG_MAX_DATA_LEN])) for i in range(0, len(mv), MSG_MAX_DATA_LEN)]


# --- the connection state: bytes in, messages out ----------------------------------------------------
class Connection:
    """Reassembles messages from arbitrary byte chunks.

    After a :class:`PeerProtocolError` the connection is poisoned (every later call re-raises it):
    a stream whose framing was wrong once cannot be resynchronised, and the caller must close it.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: PeerProtocolError | None = None
        self._eof = False

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the peer closed its side (end of stream)."""
        if self._eof and data:
            raise LocalProtocolError("feed() after end of stream")
        if not data:
            self._eof = True
            return
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return len(self._buf)

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """(unparsed bytes, whether the peer has closed): h11's name for the same thing."""
        return bytes(self._buf), self._eof

    def next_message(self) -> Message | _NeedData:
        """The next whole message, or :data:`NEED_DATA`; a truncated stream at EOF is a peer error."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except PeerProtocolError as e:
            self._error = e
            raise

    def _next(self) -> Message | _NeedData:
        buf = self._buf
        if len(buf) < MSG_HDR_LEN:
            if self._eof and buf:
                raise PeerProtocolError(f"stream ended inside a message header ({len(buf)} bytes)")
            return NEED_DATA
        size, cmd, cmd_size = HEADER.unpack_from(buf, 0)
        _check_header(size, cmd, cmd_size)  # before waiting for `size` bytes: never buffer a bogus length
        if len(buf) < size:
            if self._eof:
                raise PeerProtocolError(f"stream ended inside a {size}-byte message ({len(buf)} received)", cmd)
            return NEED_DATA
        frame = bytes(buf[:size])
        del buf[:size]
        return decode(frame)

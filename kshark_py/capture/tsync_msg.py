"""Typed payloads of TIME_SYNC messages ("none" probe/stop, "ptp", "kvm").

Why separate from :mod:`msg`: the framing layer must accept any protocol name (trace-cmd routes by
name), while the payload of each (protocol, sub-command) has its own fixed layout and byte order.
Facts: shared/spec/host-guest-timesync.md §4-6 (`trace-timesync.c`, `trace-timesync-ptp.c`,
`trace-timesync-kvm.c`).  Note the two byte orders: PTP payloads are big-endian, while the "none"
PROBE cpu (u16) and KVM packets are in the sender's native order (only same-endian peers interoperate).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .msg import LocalProtocolError, PeerProtocolError, TimeSync

PROTO_NONE: Final = "none"
PROTO_PTP: Final = "ptp"
PROTO_KVM: Final = "kvm"

# "none" framing sub-commands (trace-timesync.c)
TSYNC_PROBE: Final = 1
TSYNC_STOP: Final = 2

# ptp sub-commands
PTP_START: Final = 1
PTP_PROBE: Final = 2
PTP_PROBES: Final = 3
PTP_OFFSET: Final = 4
PTP_END: Final = 5
PTP_SYNC_LOOP: Final = 339
PTP_MAX_SAMPLES: Final = 2 * PTP_SYNC_LOOP
PTP_FLAG_FASTEST_RESPONSE: Final = 1
PTP_FLAG_USE_MARKER: Final = 2
PTP_ACCURACY: Final = 6000

# kvm sub-commands
KVM_REQUEST: Final = 1
KVM_RESPONSE: Final = 2

_NONE_PROBE = struct.Struct("=H")
_PTP_START = struct.Struct("!II")
_PTP_PROBE = struct.Struct("!i")
_PTP_SAMPLE = struct.Struct("!qI")
_PTP_PROBES_HEAD = struct.Struct("!II")
_PTP_OFFSET = struct.Struct("!qq")
_KVM = struct.Struct("=qqqq")
PTP_PROBES_SIZE: Final = _PTP_PROBES_HEAD.size + PTP_MAX_SAMPLES * _PTP_SAMPLE.size


@dataclass(frozen=True)
class SyncProbe:
    """Host -> guest: sync the vCPU ``cpu`` now (the guest pins itself to it)."""

    cpu: int


@dataclass(frozen=True)
class SyncStop:
    """Host -> guest: time sync is over."""


@dataclass(frozen=True)
class PtpStart:
    series_id: int
    flags: int


@dataclass(frozen=True)
class PtpProbe:
    count: int


@dataclass(frozen=True)
class PtpEnd:
    pass


@dataclass(frozen=True)
class PtpProbes:
    """Host -> guest: the host's receive timestamps.

    ``samples`` is trace-cmd's whole fixed table of 678 (ts, id) slots: the sample of probe number c
    sits at slot c-1 (slots can be empty, i.e. (0, 0)), and ``count`` is how many slots were filled.
    """

    series_id: int
    count: int
    samples: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class PtpOffset:
    """Guest -> host: one sample (guest time ``ts``, ``offset`` = host - guest)."""

    ts: int
    offset: int


@dataclass(frozen=True)
class KvmClock:
    """kvm REQUEST (guest ts only) / RESPONSE (ts echoed, offset, scaling, frac).

    Both are ``struct kvm_clock_offset_msg`` {s64 ts, offset, scaling, frac}: 32 bytes in the sender's
    byte order (trace-cmd sends the whole struct either way; a request's other fields are 0).
    """

    response: bool
    ts: int
    offset: int = 0
    scaling: int = 0
    frac: int = 0


TsyncPayload = SyncProbe | SyncStop | PtpStart | PtpProbe | PtpEnd | PtpProbes | PtpOffset | KvmClock


def _fixed(st: struct.Struct, payload: bytes, what: str) -> tuple:
    # trace-cmd copies min(payload, expected) bytes; a short payload leaves zeros, which no real peer sends
    if len(payload) != st.size:
        raise PeerProtocolError(f"TIME_SYNC {what}: payload of {len(payload)} bytes, expected {st.size}")
    return st.unpack(payload)


def decode_tsync(msg: TimeSync) -> TsyncPayload:
    """The typed payload of a TIME_SYNC message; raises :class:`PeerProtocolError` when invalid."""
    p, c, pl = msg.proto, msg.command, msg.payload
    if p == PROTO_NONE:
        if c == TSYNC_PROBE:
            return SyncProbe(_fixed(_NONE_PROBE, pl, "probe")[0])
        if c == TSYNC_STOP:
            return SyncStop()
    elif p == PROTO_PTP:
        if c == PTP_START:
            return PtpStart(*_fixed(_PTP_START, pl, "ptp start"))
        if c == PTP_PROBE:
            return PtpProbe(_fixed(_PTP_PROBE, pl, "ptp probe")[0])
        if c == PTP_END:
            if pl:
                raise PeerProtocolError("TIME_SYNC ptp end: unexpected payload")
            return PtpEnd()
        if c == PTP_PROBES:
            if len(pl) != PTP_PROBES_SIZE:
                raise PeerProtocolError(f"TIME_SYNC ptp probes: {len(pl)} bytes, expected {PTP_PROBES_SIZE}")
            series, count = _PTP_PROBES_HEAD.unpack_from(pl, 0)
            if count > PTP_MAX_SAMPLES:
                raise PeerProtocolError(f"TIME_SYNC ptp probes: count {count} over {PTP_MAX_SAMPLES}")
            samples = tuple(_PTP_SAMPLE.unpack_from(pl, _PTP_PROBES_HEAD.size + i * _PTP_SAMPLE.size)
                            for i in range(PTP_MAX_SAMPLES))
            return PtpProbes(series, count, samples)
        if c == PTP_OFFSET:
            return PtpOffset(*_fixed(_PTP_OFFSET, pl, "ptp offset"))
    elif p == PROTO_KVM:
        if c in (KVM_REQUEST, KVM_RESPONSE):
            ts, off, sc, fr = _fixed(_KVM, pl, "kvm")
            return KvmClock(c == KVM_RESPONSE, ts, off, sc, fr)
    raise PeerProtocolError(f"TIME_SYNC: unknown protocol/sub-command {p!r}/{c}")


def encode_tsync(payload: TsyncPayload) -> TimeSync:
    """A typed payload -> the TIME_SYNC message carrying it (byte-exact with trace-cmd's)."""
    match payload:
        case SyncProbe(cpu):
            return TimeSync(PROTO_NONE, TSYNC_PROBE, _NONE_PROBE.pack(cpu))
        case SyncStop():
            return TimeSync(PROTO_NONE, TSYNC_STOP, b"")
        case PtpStart(series, flags):
            return TimeSync(PROTO_PTP, PTP_START, _PTP_START.pack(series, flags))
        case PtpProbe(count):
            return TimeSync(PROTO_PTP, PTP_PROBE, _PTP_PROBE.pack(count))
        case PtpEnd():
            return TimeSync(PROTO_PTP, PTP_END, b"")
        case PtpProbes(series, count, samples):
            body = bytearray(PTP_PROBES_SIZE)
            _PTP_PROBES_HEAD.pack_into(body, 0, series, count)
            for i, (ts, sid) in enumerate(samples[:PTP_MAX_SAMPLES]):
                _PTP_SAMPLE.pack_into(body, _PTP_PROBES_HEAD.size + i * _PTP_SAMPLE.size, ts, sid)
            return TimeSync(PROTO_PTP, PTP_PROBES, bytes(body))
        case PtpOffset(ts, offset):
            return TimeSync(PROTO_PTP, PTP_OFFSET, _PTP_OFFSET.pack(ts, offset))
        case KvmClock(response, ts, off, sc, fr):
            for name, v in (("ts", ts), ("offset", off), ("scaling", sc), ("frac", fr)):
                if not -(1 << 63) <= v < (1 << 63):
                    raise LocalProtocolError(f"kvm {name} {v} does not fit a signed 64-bit integer")
            return TimeSync(PROTO_KVM, KVM_RESPONSE if response else KVM_REQUEST, _KVM.pack(ts, off, sc, fr))
    raise TypeError(f"not a time-sync payload: {payload!r}")

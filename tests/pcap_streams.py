"""A tiny libpcap reader with per-stream TCP reassembly, for the protocol captures in shared/traces/protocol.

Why our own: the captures are plain libpcap files (Ethernet or raw/loopback link types) and all the
tests need is each TCP connection's byte stream per direction, reassembled by sequence number
(qemu's user-mode network retransmits and reorders on loopback), so a dependency would buy nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_NULL = 0


@dataclass
class Stream:
    """One direction of one TCP connection: segments keyed by relative sequence number."""

    src: tuple[str, int]
    dst: tuple[str, int]
    isn: int | None = None
    segments: dict[int, bytes] = field(default_factory=dict)
    first_time: float = 0.0

    def data(self) -> bytes:
        """The reassembled bytes: overlapping/retransmitted segments collapse, a gap ends the stream."""
        if not self.segments:
            return b""
        base = (self.isn + 1) if self.isn is not None else min(self.segments)
        out = bytearray()
        pos = base
        items = sorted(self.segments.items(), key=lambda kv: (kv[0] - base) & 0xFFFFFFFF)
        for seq, payload in items:
            rel = (seq - pos) & 0xFFFFFFFF
            if rel >= 0x80000000:  # starts before pos: overlap
                skip = (pos - seq) & 0xFFFFFFFF
                if skip >= len(payload):
                    continue
                payload = payload[skip:]
                rel = 0
            if rel > 0:
                break  # gap: keep what is contiguous
            out += payload
            pos = (pos + len(payload)) & 0xFFFFFFFF
        return bytes(out)


def _ip_payload(linktype: int, frame: bytes) -> bytes | None:
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        etype = struct.unpack_from("!H", frame, 12)[0]
        off = 14
        while etype == 0x8100 and len(frame) >= off + 4:  # VLAN
            etype = struct.unpack_from("!H", frame, off + 2)[0]
            off += 4
        return frame[off:] if etype == 0x0800 else None
    if linktype == LINKTYPE_RAW:
        return frame
    if linktype == LINKTYPE_LINUX_SLL:
        return frame[16:] if struct.unpack_from("!H", frame, 14)[0] == 0x0800 else None
    if linktype == LINKTYPE_NULL:
        return frame[4:]
    raise ValueError(f"unsupported pcap link type {linktype}")


def tcp_streams(path: str | Path) -> list[Stream]:
    """Every TCP direction in a pcap, in order of first appearance (IPv4 only)."""
    raw = Path(path).read_bytes()
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a libpcap file")
    linktype = struct.unpack_from(e + "I", raw, 20)[0]
    streams: dict[tuple, Stream] = {}
    off = 24
    while off + 16 <= len(raw):
        ts_s, ts_u, incl, _orig = struct.unpack_from(e + "IIII", raw, off)
        off += 16
        frame = raw[off:off + incl]
        off += incl
        ip = _ip_payload(linktype, frame)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        ip = ip[:total]
        src = ".".join(map(str, ip[12:16]))
        dst = ".".join(map(str, ip[16:20]))
        tcp = ip[ihl:]
        sport, dport, seq, _ack, offflags = struct.unpack_from("!HHIIH", tcp, 0)
        doff = (offflags >> 12) * 4
        flags = offflags & 0x3F
        key = (src, sport, dst, dport)
        st = streams.get(key)
        if st is None:
            st = streams[key] = Stream((src, sport), (dst, dport), first_time=ts_s + ts_u / 1e6)
        if flags & 0x02:  # SYN
            st.isn = seq
        payload = tcp[doff:]
        if payload:
            prev = st.segments.get(seq)
            if prev is None or len(payload) > len(prev):
                st.segments[seq] = bytes(payload)
    return list(streams.values())

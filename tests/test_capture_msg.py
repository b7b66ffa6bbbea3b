"""The agent message codec against real captures of trace-cmd 3.1.6 sessions (shared/traces/protocol)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from kshark_py.capture import msg as M
from kshark_py.capture.tsync_msg import (
    PTP_OFFSET,
    PtpOffset,
    PtpProbes,
    SyncProbe,
    SyncStop,
    decode_tsync,
    encode_tsync,
)
from kshark_py.loaders.tracedat import open_trace

from .pcap_streams import tcp_streams

PROTO = Path(__file__).resolve().parents[2] / "shared" / "traces" / "protocol"
PCAPS = ["agent-tcp-notsync.pcap", "agent-fifo-notsync.pcap", "ptp-1vcpu/agent-tcp-ptp.pcap"]
DATA_PORTS = {1500, 1501}


def _message_streams(pcap: str) -> list[tuple[tuple, bytes]]:
    """The streams of a capture that carry messages (control and time sync, not raw CPU pages)."""
    out = []
    for s in tcp_streams(PROTO / pcap):
        data = s.data()
        if not data:
            continue
        if s.src[1] in DATA_PORTS and s.dst[1] not in DATA_PORTS and not data.startswith(b"\0\0"):
            continue  # per-CPU page stream from the agent
        out.append(((s.src, s.dst), data))
    return out


def _parse_all(data: bytes, chunk: int | None = None) -> list[M.Message]:
    conn = M.Connection()
    msgs: list[M.Message] = []
    step = chunk or len(data)
    for i in range(0, len(data), step):
        conn.feed(data[i:i + step])
        while (m := conn.next_message()) is not M.NEED_DATA:
            msgs.append(m)
    conn.feed(b"")
    assert conn.next_message() is M.NEED_DATA
    return msgs


@pytest.fixture(scope="module")
def captured() -> dict[str, list[tuple[tuple, bytes, list[M.Message]]]]:
    if not PROTO.is_dir():
        pytest.fail(f"protocol captures not found at {PROTO}")
    return {p: [(k, d, _parse_all(d)) for k, d in _message_streams(p)] for p in PCAPS}


def test_every_message_parses_and_reencodes_exactly(captured):
    for pcap, streams in captured.items():
        assert streams, pcap
        for key, data, msgs in streams:
            assert msgs, (pcap, key)
            assert b"".join(M.encode(m) for m in msgs) == data, (pcap, key)
            for m in msgs:
                assert M.decode(M.encode(m)) == m


def test_expected_sessions(captured):
    tcp = captured["agent-tcp-notsync.pcap"]
    kinds = [Counter(type(m).__name__ for m in msgs) for _, _, msgs in tcp]
    assert {"TraceReq": 1, "Close": 1} in kinds
    assert {"TraceResp": 1, "SendData": 127, "FinData": 1, "CloseResp": 1} in kinds
    req = next(m for _, _, ms in tcp for m in ms if isinstance(m, M.TraceReq))
    assert req.args == ("-C", "local", "-e", "sched:sched_switch") and req.tsync_protos is None
    resp = next(m for _, _, ms in tcp for m in ms if isinstance(m, M.TraceResp))
    assert resp.ports == (1500, 1501) and resp.page_size == 4096 and resp.tsync_proto == ""
    fifo = next(m for _, _, ms in captured["agent-fifo-notsync.pcap"] for m in ms if isinstance(m, M.TraceResp))
    assert fifo.use_fifos and fifo.ports == (0, 0)
    ptp = captured["ptp-1vcpu/agent-tcp-ptp.pcap"]
    preq = next(m for _, _, ms in ptp for m in ms if isinstance(m, M.TraceReq))
    assert preq.tsync_protos == ("ptp",)
    presp = next(m for _, _, ms in ptp for m in ms if isinstance(m, M.TraceResp))
    assert presp.tsync_proto == "ptp" and presp.tsync_port == 1501


def test_byte_by_byte_and_chunked(captured):
    for streams in captured.values():
        for _, data, msgs in streams:
            head = data[:20000]
            whole = _parse_prefix(head)  # complete messages in the prefix only
            conn = M.Connection()
            got = []
            for b in head:
                conn.feed(bytes([b]))
                while (m := conn.next_message()) is not M.NEED_DATA:
                    got.append(m)
            assert got == msgs[:len(got)]
            assert got == whole
            assert _parse_all(data, chunk=977) == msgs


def _parse_prefix(data: bytes) -> list[M.Message]:
    conn = M.Connection()
    conn.feed(data)
    out = []
    while (m := conn.next_message()) is not M.NEED_DATA:
        out.append(m)
    return out


def test_trailing_bytes(captured):
    _, data, msgs = captured["agent-tcp-notsync.pcap"][0]
    first = M.encode(msgs[0])
    conn = M.Connection()
    conn.feed(first + data[:5])
    assert conn.next_message() == msgs[0]
    assert conn.next_message() is M.NEED_DATA
    assert conn.trailing_data == (data[:5], False)
    conn.feed(b"")
    with pytest.raises(M.PeerProtocolError, match="ended inside"):
        conn.next_message()
    with pytest.raises(M.PeerProtocolError):  # poisoned
        conn.next_message()


def test_ptp_offsets_are_the_guest_time_shift(captured):
    offsets = []
    for _, _, msgs in captured["ptp-1vcpu/agent-tcp-ptp.pcap"]:
        for m in msgs:
            if isinstance(m, M.TimeSync):
                t = decode_tsync(m)
                assert encode_tsync(t) == m
                if m.command == PTP_OFFSET and m.proto == "ptp":
                    assert isinstance(t, PtpOffset)
                    offsets.append((t.ts, t.offset))
    ts = open_trace(PROTO / "ptp-1vcpu" / "trace-vmguest.dat").meta.time_shift
    assert ts is not None and len(ts.cpus) == 1
    assert offsets == list(zip(ts.cpus[0].times, ts.cpus[0].offsets, strict=True))
    assert offsets == [(21325921142, 4671792794167), (40197683847, 4671773516290)]


def test_tsync_kinds(captured):
    kinds = Counter()
    for _, _, msgs in captured["ptp-1vcpu/agent-tcp-ptp.pcap"]:
        for m in msgs:
            if isinstance(m, M.TimeSync):
                kinds[type(decode_tsync(m)).__name__] += 1
    assert kinds["SyncProbe"] == 2 and kinds["SyncStop"] == 1 and kinds["PtpProbes"] == 2
    assert kinds["PtpProbe"] == 4 * 339


def test_send_data_is_the_guest_file_head(captured):
    for pcap, guest in (("agent-tcp-notsync.pcap", "notsync-trace-gt.dat"),
                        ("agent-fifo-notsync.pcap", None)):
        stream = b""
        for _, _, msgs in captured[pcap]:
            if any(isinstance(m, M.SendData) for m in msgs):
                stream = b"".join(m.data for m in msgs if isinstance(m, M.SendData))
                assert isinstance(msgs[msgs.index(next(m for m in msgs if isinstance(m, M.FinData))) - 1],
                                  M.SendData)
        assert len(stream) > 1_000_000
        assert stream.startswith(b"\x17\x08\x44tracing7\0")
        if guest:
            assert len(stream) == 1_033_696
            file = (PROTO / guest).read_bytes()
            done = 1_033_586  # the DONE value the host patches (next options section offset)
            assert stream[:done] == file[:done]
            assert stream[done:done + 8] == bytes(8) and file[done:done + 8] != bytes(8)
            assert stream[done + 8:] == file[done + 8:len(stream)]


def test_send_data_split():
    data = bytes(range(256)) * 100
    parts = M.send_data_messages(data)
    assert all(len(p.data) <= M.MSG_MAX_DATA_LEN for p in parts)
    assert b"".join(p.data for p in parts) == data
    assert all(len(M.encode(p)) <= M.MSG_MAX_LEN for p in parts)


@pytest.mark.parametrize("frame, match", [
    (M.HEADER.pack(8193, 3, 0), "over the maximum"),
    (M.HEADER.pack(11, 3, 0), "under the header"),
    (M.HEADER.pack(12, 12, 0), "unknown command"),
    (M.HEADER.pack(16, 6, 8) + bytes(4), "command struct size"),
    (M.HEADER.pack(20, 2, 4) + b"\xff\xff\xff\xff" + b"1\0\0\0", "RINIT"),
    (M.HEADER.pack(22, 2, 4) + b"\0\0\0\x02" + b"1\0a\0\0\0", "RINIT"),
    (M.HEADER.pack(24, 1, 12) + b"\0\0\0\x01\0\0\x10\0\xff\xff\xff\xff", "TINIT"),
    (M.HEADER.pack(44, 6, 16) + bytes(16) + b"\0\0\0\0\0\0\0\x08\xff\xff\xff\xff\0\0\0\0", "argc"),
    (M.HEADER.pack(40, 6, 16) + bytes(16) + b"\0\0\0\0\0\0\x10\0\0\0\0\x01a\0\0\0", "length"),
    (M.HEADER.pack(13, 0, 0) + b"x", "unexpected payload"),
    # found by the fuzz test: a zero-CPU RINIT (trace-cmd rejects it) used to decode to RInit(()), which
    # encode() refuses; a port of non-ASCII digits used to raise ValueError ("²") or decode ("١٢" -> 12)
    (M.HEADER.pack(12, 2, 0), "RINIT: zero CPUs"),
    (M.HEADER.pack(16, 2, 4) + bytes(4), "RINIT: zero CPUs"),
    (M.HEADER.pack(19, 2, 4) + b"\0\0\0\x01" + "²".encode() + b"\0", "bad port number"),
    (M.HEADER.pack(57, 7, 40) + b"\0\0\0\0\0\0\0\x01\0\0\x10\0" + bytes(28) + "١٢".encode() + b"\0",
     "bad port number"),
])
def test_peer_errors(frame, match):
    conn = M.Connection()
    conn.feed(frame)
    with pytest.raises(M.PeerProtocolError, match=match):
        conn.next_message()


def test_header_rejected_before_waiting_for_body():
    conn = M.Connection()
    conn.feed(M.HEADER.pack(0x7FFFFFFF, 3, 0))  # a huge length must not make us wait/buffer for it
    with pytest.raises(M.PeerProtocolError):
        conn.next_message()


def test_local_errors():
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.SendData(bytes(M.MSG_MAX_DATA_LEN + 1)))
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.TraceReq(0, 1 << 64))
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.TraceResp(0, 4096, 1, "x" * 17, 0, (1,)))
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.TraceReq(0, 1, ("a\0b",)))
    with pytest.raises(M.LocalProtocolError):
        M.encode("CLOSE")  # type: ignore[arg-type]
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.TraceReq(0, 1, None, ("pté",)))
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.TraceReq(0, 1, None, ("",)))
    with pytest.raises(M.LocalProtocolError):
        M.encode(M.TraceResp(0, 4096, 1, "pté", 0, (1,)))
    assert not issubclass(M.LocalProtocolError, M.PeerProtocolError)


def test_tsync_proto_name_with_a_non_ascii_byte_roundtrips():
    # found by the fuzz test: decoded (ASCII + surrogate escapes) but re-encoding raised UnicodeEncodeError
    params = b"p\xf4p\0\0"
    frame = M.HEADER.pack(12 + 16 + 8 + len(params), 6, 16) + bytes(16) + b"\0\0\0\x01\0\0\0\x05" + params
    m = M.decode(frame)
    assert m == M.TraceReq(0, 0, None, ("p\udcf4p",))
    assert M.encode(m) == frame


def test_constructed_roundtrip():
    samples = [M.Close(), M.CloseResp(), M.FinData(), M.NotSupp(), M.Cont(), M.SendData(b"abc"),
               M.TInit(4, 4096, ("tcp",)), M.RInit((1500, 1501)),
               M.TraceReq(1, 42, ("-e", "sched"), ("kvm", "ptp")), M.TraceReq(0, 7, None, ()),
               M.TraceProxy(0, 9, 2, 1, ("-e", "irq"), None),
               M.TraceResp(0, 4096, 5, "ptp", 1502, (1500, 1501)),
               encode_tsync(SyncProbe(3)), encode_tsync(SyncStop())]
    for m in samples:
        assert M.decode(M.encode(m)) == m
    p = PtpProbes(1, 2, ((5, 1), (6, 2)) + ((0, 0),) * 676)
    assert decode_tsync(encode_tsync(p)) == p


# --- fuzz: mutated real messages are a message or a typed peer error, never anything else --------------
# The cases come from a seeded random.Random, not from Hypothesis: Hypothesis draws 5% of its values from
# constants it mines from every non-test project module in sys.modules, with derandomize=True too, so its
# inputs changed with each edit to kshark_py and with which test files a run had imported; a few of those
# input sets hit the codec bugs the regression cases above pin (the "flaky" failures).  These cases depend
# only on the seed and the captures.  To explore further locally, run _check_stream over other seeds.
FUZZ_SEED = 20261126
FUZZ_CASES = 5000


def _corpus() -> list[bytes]:
    frames: list[bytes] = []
    for pcap in PCAPS:
        for _, data in _message_streams(pcap):
            seen: set[tuple[int, int]] = set()
            for m in _parse_prefix(data):
                e = M.encode(m)
                key = (M.HEADER.unpack_from(e)[1], len(e) // 512)
                if key in seen:
                    continue
                seen.add(key)
                frames.append(e)
    return frames


_CORPUS = _corpus() if PROTO.is_dir() else [M.encode(M.Close())]
_U32_VALUES = [0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF, 8192, 8180, 12]


def _mutated(rng: random.Random) -> bytes:
    """A corpus frame with 1-6 mutations, half of them in the header and command struct (first 64 bytes)."""
    frame = bytearray(rng.choice(_CORPUS))
    for _ in range(rng.randint(1, 6)):
        if not frame:
            break
        op = rng.choice(["flip", "set", "trunc", "insert", "u32"])
        i = rng.randrange(min(len(frame), 64) if rng.random() < 0.5 else len(frame))
        if op == "flip":
            frame[i] ^= 1 << rng.randrange(8)
        elif op == "set":
            frame[i] = rng.choice([0, 1, 2, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == "trunc":
            del frame[i:]
        elif op == "insert":
            frame[i:i] = rng.randbytes(rng.randint(1, 8))
        else:
            j = min(i & ~3 if rng.random() < 0.5 else i, max(0, len(frame) - 4))
            frame[j:j + 4] = rng.choice(_U32_VALUES).to_bytes(4, "big")
    return bytes(frame)


def _fuzz_cases(seed: int, n: int) -> list[tuple[bytes, int]]:
    rng = random.Random(seed)
    return [(_mutated(rng), rng.choice([1, 2, 3, 5, 12, 64, rng.randint(1, 64)])) for _ in range(n)]


def _reencodes(m: M.Message, header: bytes) -> None:
    """decode(encode(m)) == m, for the message received with this 12-byte header."""
    try:
        frame = M.encode(m)
    except M.LocalProtocolError as e:
        # the one received message that cannot be re-encoded: trace-cmd reads a command struct shorter
        # than its own (zero-filling the rest), so a full-size frame with a short struct is valid, but its
        # canonical form (with the whole struct) is over MSG_MAX_LEN
        size, cmd, cmd_size = M.HEADER.unpack(header)
        assert size - cmd_size + M.CMD_SIZES[M.Cmd(cmd)] > M.MSG_MAX_LEN, e
        assert "over the maximum" in str(e), e
        return
    assert M.decode(frame) == m


def _check_stream(data: bytes, chunk: int) -> None:
    conn = M.Connection()
    try:
        for i in range(0, len(data), chunk):
            conn.feed(data[i:i + chunk])
            while True:
                start = min(i + chunk, len(data)) - conn.buffered  # where the next message begins
                header = data[start:start + M.MSG_HDR_LEN]
                if (m := conn.next_message()) is M.NEED_DATA:
                    break
                _reencodes(m, header)
                if isinstance(m, M.TimeSync):
                    try:
                        decode_tsync(m)
                    except M.PeerProtocolError:
                        pass
        conn.feed(b"")
        conn.next_message()
    except M.PeerProtocolError:
        pass


def test_fuzz_mutated_messages():
    for n, (data, chunk) in enumerate(_fuzz_cases(FUZZ_SEED, FUZZ_CASES)):
        try:
            _check_stream(data, chunk)
        except Exception as e:
            raise AssertionError(f"fuzz case {n} (seed {FUZZ_SEED}): chunk={chunk} data={data!r}") from e


def test_oversize_canonical_form():
    # a TIME_SYNC with a 16-byte struct (no sub-command) filling MSG_MAX_LEN: valid for trace-cmd, and
    # what the fuzz test's re-encoding tolerates
    frame = M.HEADER.pack(M.MSG_MAX_LEN, M.Cmd.TIME_SYNC, 16) + b"ptp".ljust(16, b"\0") + bytes(8164)
    m = M.decode(frame)
    assert m == M.TimeSync("ptp", 0, bytes(8164))
    with pytest.raises(M.LocalProtocolError, match="over the maximum"):
        M.encode(m)
    _check_stream(frame, 64)

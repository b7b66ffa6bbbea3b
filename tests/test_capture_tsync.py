"""PTP time sync: the offset arithmetic, both roles against each other, the TIME_SHIFT payload.

The live cases run our ptp server (guest role) and client (host role) over a socketpair on this machine:
both read one clock, so the measured offset must be ~0, with trace markers (root + tracefs) and with the
CLOCK_MONOTONIC_RAW fallback.  Interop with trace-cmd is in test_capture_interop.py.
"""

from __future__ import annotations

import socket
import threading

import pytest

from kshark_py.capture import tsync as S
from kshark_py.capture import tsync_msg as T
from kshark_py.capture.tracefs import RecordError, find_tracefs
from kshark_py.loaders.layout import layouts
from kshark_py.loaders.options import TraceMetadata, parse_option

LOOP = T.PTP_SYNC_LOOP


def _tables(offset: int, delays: list[tuple[int, int]]) -> tuple[list, int, list, int]:
    """Guest sends at g, host receives at g + d1 (host clock = guest + offset), guest gets it back at g+d1+d2."""
    server = [(0, 0)] * (2 * LOOP)
    client = [(0, 0)] * (2 * LOOP)
    g = 1_000_000
    for i, (d1, d2) in enumerate(delays, start=1):
        server[LOOP + i - 1] = (g, i)  # 's'
        client[i - 1] = (g + d1 + offset, i)
        server[i - 1] = (g + d1 + d2, i)  # 'r'
        g += 10_000
    return server, 2 * len(delays), client, len(delays)


def test_fastest_response_picks_the_shortest_round_trip():
    delays = [(500 + 7 * i % 300, 800 + 13 * i % 500) for i in range(LOOP)]
    delays[123] = (40, 40)  # symmetric and fastest: its mid-point is exact
    server, sc, client, cc = _tables(5_000_000, delays)
    offset, ts, bad = S.ptp_fastest(server, sc, client, cc)
    assert (offset, bad) == (5_000_000, 0)
    assert ts == 1_000_000 + 123 * 10_000 + 40


def test_fastest_skips_bad_probes_and_negative_offsets():
    delays = [(1000, 1000)] * LOOP
    delays[7] = (10, 10)
    server, sc, client, cc = _tables(-42, delays)
    client[7] = (client[7][0], 999)  # id mismatch: not a probe
    offset, _ts, bad = S.ptp_fastest(server, sc, client, cc)
    assert bad == 1 and offset == -42
    assert S.ptp_fastest([(0, 0)] * (2 * LOOP), 0, client, cc) == (0, 0, 0)


def _run_pair(server_clock: S.MarkerClock, client_clock: S.MarkerClock, rounds: int = 2) -> list[tuple[int, int]]:
    a, b = socket.socketpair()
    chs, chc = S.SyncChannel(a, "server", 10), S.SyncChannel(b, "client", 10)
    sst, cst = S.PtpState(server_clock), S.PtpState(client_clock)
    got: list[tuple[int, int]] = []
    err: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(rounds):
                got.append(S.ptp_client(chc, cst))
        except BaseException as e:  # reported by the main thread
            err.append(e)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        mine = [S.ptp_server(chs, sst) for _ in range(rounds)]
        t.join(10)
    finally:
        a.close()
        b.close()
    assert not err, err
    assert got == [(o, ts) for o, ts in mine]  # the host records exactly what the guest computed
    assert [s for s, _o, _b in sst.stats] == list(range(1, rounds + 1))
    return got


def test_ptp_roles_monotonic_raw_fallback():
    off = S.MarkerClock.__new__(S.MarkerClock)
    off.available = False
    got = _run_pair(off, off)
    for offset, ts in got:
        assert ts > 0 and abs(offset) < 1_000_000, got


def test_ptp_roles_with_trace_markers():
    try:
        find_tracefs()
    except RecordError as e:
        pytest.skip(str(e))
    import os

    if os.geteuid() != 0:
        pytest.skip("trace markers need root")
    sc, cc = S.MarkerClock("local"), S.MarkerClock("local")
    try:
        assert sc.available and cc.available, (sc.error, cc.error)
        got = _run_pair(sc, cc)
    finally:
        sc.close()
        cc.close()
    assert not sc.path.exists() and not cc.path.exists()
    for offset, ts in got:
        assert ts > 0 and abs(offset) < 1_000_000, got


def test_time_shift_payload_reads_back():
    lay = layouts("<", 8)
    samples = [S.CpuSamples([10, 20], [5, 6], [1, 1], [0, 0]), S.CpuSamples([11, 21], [7, 8], [1, 1], [0, 0])]
    payload = S.time_shift_payload(lay, 0xABCDEF, 1, samples)
    meta = TraceMetadata()
    parse_option(meta, 12, payload, 0, lay, 7)
    ts = meta.time_shift
    assert ts is not None and ts.peer_trace_id == 0xABCDEF and ts.flags == 1
    assert [c.offsets for c in ts.cpus] == [(5, 6), (7, 8)]


def test_protocol_selection():
    assert S.select_protocol(("kvm", "ptp"), "local") == "ptp"  # kvm needs x86-tsc (more in test_capture_kvm)
    assert S.select_protocol(("kvm", "ptp"), "x86-tsc", ("ptp",)) == "ptp"
    assert S.select_protocol(("kvm",), "local") is None
    assert S.select_protocol(None) is None

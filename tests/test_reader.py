"""The reader against the real corpus: counts, metadata and options as trace-cmd dumps them."""

from __future__ import annotations

import numpy as np
import pytest

from kshark_py.loaders.layout import OptionId
from kshark_py.loaders.merge import merge_order
from kshark_py.loaders.tracedat import open_trace
from tests.support.mergeruns import random_runs

# event counts from shared/traces/README.md (lines of each file's trace-cmd report)
COUNTS = {
    "host-sched-v7.dat": [126377],
    "host-small-v7.dat": [651],
    "host-sched-v6.dat": [35400],
    "host-instances.dat": [56891, 5622],
    "host-lost-events.dat": [20641],
    "host-printk.dat": [2340],
    "host-kvm.dat": [13682],
    "vm/trace.dat": [115597],
    "vm/trace-vmguest.dat": [68921],
    "vm-tsync/trace.dat": [127829],
    "vm-tsync/trace-vmguest.dat": [62306],
    "external/doc-test/trace.dat": [11721],
    "external/doc-test/trace-Salamander4.dat": [90029],
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_event_counts(traces, name):
    tf = open_trace(traces / name)
    assert [len(b.events) for b in tf.buffers] == COUNTS[name]
    for b in tf.buffers:
        t = b.events
        assert t.column("event_id").to_numpy().min() >= 0
        assert set(np.unique(t.column("event_id").to_numpy())) <= set(tf.formats.by_id)


def test_header_facts(traces):
    tf = open_trace(traces / "host-small-v7.dat")
    assert (tf.version, tf.endian, tf.page_size, tf.compression) == (7, "<", 4096, "zstd")
    assert tf.meta.section_offsets[OptionId.HEADER_INFO] == 37
    assert tf.header_page.long_size == 8 and tf.header_page.data_offset == 16
    assert tf.meta.cpu_count == 2 and tf.trace_clock == "local"
    assert tf.meta.version.startswith("3.1.6")
    assert len(tf.meta.cpustats) == 2
    v6 = open_trace(traces / "host-sched-v6.dat")
    assert (v6.version, v6.compression, v6.cpus) == (6, "none", 2)


def test_zlib_and_tsc2nsec(traces):
    tf = open_trace(traces / "external/doc-test/trace-Salamander4.dat")
    assert tf.compression == "zlib"
    ts = tf.meta.time_shift
    assert ts is not None and ts.flags == 0 and len(ts.cpus) == 1 and len(ts.cpus[0].times) == 2
    assert tf.meta.tsc2nsec.mult == 735842807 and tf.meta.tsc2nsec.shift == 31
    # worked example B2 of host-guest-timesync.md: first guest event on the host clock
    assert int(tf.buffers[0].events.column("ts")[0].as_py()) == 22149948193188


def test_guest_and_time_shift_options(traces):
    host = open_trace(traces / "vm-tsync/trace.dat")
    guest = open_trace(traces / "vm-tsync/trace-vmguest.dat")
    (g,) = host.meta.guests
    assert g.name == "vmguest" and g.trace_id == guest.meta.trace_id == 0xB14EC67A89F89A05
    assert g.vcpu_pids == (-1,)
    ts = guest.meta.time_shift
    assert ts.peer_trace_id == host.meta.trace_id and ts.flags == 1
    assert ts.cpus[0].times == (27531925447, 47252342210)
    assert ts.cpus[0].offsets == (3297002207353, 3296982634918)
    # worked example A2: first guest event, interpolated, lands at host 3337155862296
    assert int(guest.buffers[0].events.column("ts")[0].as_py()) == 3337155862296


def test_lost_events_are_records(traces):
    tf = open_trace(traces / "host-lost-events.dat")
    lost = tf.buffers[0].lost.to_pylist()
    assert len(lost) == 16
    assert lost[0]["count"] == 777 and lost[0]["cpu"] == 0
    assert any(x["count"] == -1 for x in lost)  # "[EVENTS DROPPED]" without a stored count


def test_instances(traces):
    tf = open_trace(traces / "host-instances.dat")
    assert [b.name for b in tf.buffers] == ["", "irqbuf"]
    irq = tf.buffer("irqbuf")
    names = {tf.formats.get(e).name for e in np.unique(irq.events.column("event_id").to_numpy())}
    assert names <= {"irq_handler_entry", "irq_handler_exit", "softirq_entry", "softirq_exit", "softirq_raise",
                     "hrtimer_expire_entry", "hrtimer_expire_exit"}


def test_metadata_blocks(traces):
    tf = open_trace(traces / "host-small-v7.dat")
    assert len(tf.kallsyms) > 10000
    name, off, _start, _mod = tf.kallsyms.resolve(tf.kallsyms.addrs[100] + 3)
    assert off == 3 and name == tf.kallsyms.names[100]
    assert tf.cmdlines[5874] == "bash"
    p = open_trace(traces / "host-printk.dat").printk
    assert len(p) > 10


def test_merge_order_matches_head_merge():
    """The stable-sort merge equals trace-cmd's repeated smallest-head pick, even with time going back."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        segs = [np.sort(rng.integers(0, 50, rng.integers(0, 12))) for _ in range(rng.integers(1, 4))]
        for s in segs:  # make some streams non-monotonic
            if len(s) > 2 and rng.random() < 0.5:
                s[rng.integers(0, len(s))] = rng.integers(0, 50)
        heads = [0] * len(segs)
        expect = []
        base = np.cumsum([0] + [len(s) for s in segs])
        while True:
            best = -1
            for k, s in enumerate(segs):
                if heads[k] < len(s) and (best < 0 or s[heads[k]] < segs[best][heads[best]]):
                    best = k
            if best < 0:
                break
            expect.append(base[best] + heads[best])
            heads[best] += 1
        assert merge_order(segs).tolist() == expect


def test_label_merge_and_scatter_equal_the_reference_merge():
    """The reader merges without a position per row (Merge + scatter_merged): same order as
    merge_order for few and many runs, ties and clocks going back, at any chunk size."""
    from kshark_py.loaders.merge import Merge, scatter_merged

    rng = np.random.default_rng(7)
    for _ in range(150):
        nseg = int(rng.integers(1, 12))
        segs, order, inv, ts, bounds = random_runs(rng, nseg)
        n = len(order)
        merge = Merge([ts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        pick = rng.integers(0, max(n, 1), 10) if n else np.zeros(0, np.int64)
        assert merge.positions(pick).tolist() == inv[pick].tolist()
        cpu_ids = rng.permutation(40)[:nseg].astype(np.int16)
        labels = np.empty(n, np.int16)
        merge.fill(labels, cpu_ids, chunk=int(rng.integers(1, 9)))
        run_of = np.repeat(np.arange(nseg), [len(s) for s in segs])
        assert labels.tolist() == cpu_ids[run_of[order]].tolist()
        lut = np.full(40, -1, np.int64)
        lut[cpu_ids] = np.arange(nseg)
        src = {"ts": ts.copy(), "x": np.arange(n, dtype=np.int32) * 3}
        out = scatter_merged(src, labels, lut, bounds, chunk=int(rng.integers(1, 9)))
        assert out["ts"].tolist() == ts[order].tolist()
        assert out["x"].tolist() == (np.arange(n) * 3)[order].tolist()


def test_cmdlines_resolve_like_libtraceevent():
    """Duplicated pids resolve to the entry libtraceevent's sorted array + bsearch finds; parsing stops
    at the first malformed line, as tep_parse_saved_cmdlines() does."""
    from kshark_py.loaders.metadata import parse_cmdlines

    assert parse_cmdlines(b"5 a\n7 b\n5 c\n9 d\n") == {5: "a", 7: "b", 9: "d"}
    assert parse_cmdlines(b"5 python3\n5 bash\n") == {5: "python3"}  # the flaky capture case
    assert parse_cmdlines(b"5 a\nnot a line\n9 d\n") == {5: "a"}
    assert parse_cmdlines(b"12 kworker/0:1 with spaces\n") == {12: "kworker/0:1 with spaces"}


def test_open_files_share_one_pool_of_decompression_threads(traces):
    """Ten decoded zstd files held open at once use one pool of threads, not a pool per store."""
    import threading

    from kshark_py.loaders.tracedat import open_trace

    before = threading.active_count()
    files = [open_trace(str(traces / "host-sched-v7.dat")) for _ in range(10)]
    try:
        for tf in files:
            tf.decode_all()  # bulk decoding decompresses chunk batches in the pool
        assert threading.active_count() - before <= 4
    finally:
        for tf in files:
            tf.close()

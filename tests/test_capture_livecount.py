"""Live guest event/lost counts (capture.livecount): counted slice by slice while pages arrive, they must end
equal to what our reader finds in the finished guest file.

The corpus case needs no root: each CPU's page data of real trace.dat files (some with lost events, with
and without stored counts) is written to a stream file in uneven pieces, counted after every piece with a
small budget, and compared with the reader's per-CPU stats.  The recording cases run our host
(:class:`Recording`, as the capture panel does) with our agent over TCP on loopback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kshark_py.capture.control import Recording, progress
from kshark_py.capture.eventspec import EventSpec
from kshark_py.capture.livecount import PageFormat, StreamCounter, cpu_lost_text
from kshark_py.capture.session import GuestConfig, HostSession
from kshark_py.loaders.tracedat import open_trace

from .support.capture import ROOT, our_agent

TRACES = ROOT.parent / "shared" / "traces"


def cpu_pages(tf, buf) -> dict[int, bytes]:
    """Each CPU's (decompressed) page data of a loaded buffer."""
    raw = Path(tf.path).read_bytes()
    out, k0 = {}, 0
    for cd in buf.cpu_data:
        if buf.compressed:
            t = buf._chunks[cd.cpu]
            n = len(t.usizes) if t is not None else 0
            out[cd.cpu] = buf.store.decompress_range(k0, k0 + n).tobytes() if n else b""
            k0 += n
        else:
            out[cd.cpu] = raw[cd.offset:cd.offset + cd.size]
    return out


@pytest.mark.parametrize("name", ["host-lost-events.dat", "host-instances.dat", "host-sched-v6.dat"])
def test_counts_in_slices_match_the_reader(tmp_path, name):
    tf = open_trace(TRACES / name)
    buf = tf.buffers[0]
    assert buf.events.num_rows > 0  # loads the buffer: per-CPU stats
    fmt = PageFormat(buf.page_size, tf.lay, tf.header_page.data_offset)
    lost_seen = unknown_seen = 0
    rng = np.random.default_rng(1)
    for cpu, data in cpu_pages(tf, buf).items():
        st = next(s for s in buf.stats if s.cpu == cpu)
        path = tmp_path / f"cpu{cpu}"
        path.write_bytes(b"")
        c = StreamCounter(path, fmt)
        cuts = sorted(rng.integers(0, max(1, len(data)), 9).tolist()) + [len(data)]
        prev = 0
        with open(path, "ab") as f:
            for k in cuts:  # pieces that end mid-page, as a socket delivers them
                f.write(data[prev:k])
                f.flush()
                prev = k
                c.update(budget=3 * buf.page_size)
                assert c.counted_bytes % buf.page_size == 0
            while c.update(budget=3 * buf.page_size):
                pass
        assert c.counted_bytes == len(data) - len(data) % buf.page_size
        assert (c.events, c.lost, c.lost_unknown_pages, c.pages) == (st.events, st.lost_events,
                                                                     st.lost_unknown_pages, st.pages)
        lost_seen += c.lost
        unknown_seen += c.lost_unknown_pages
    if name == "host-lost-events.dat":  # the corpus file has both kinds of lost-event marks
        assert lost_seen > 0 and unknown_seen > 0
    assert cpu_lost_text(3, 1) == "3+" and cpu_lost_text(3) == "3" and cpu_lost_text(None) == "—"


def _record(tmp: Path, guest_specs: list[str], command: str, *extra: str) -> tuple[Recording, list]:
    """Our host (a Recording, as the panel runs it) with our agent over TCP; progress rows seen while recording."""
    seen = []
    with our_agent(tmp) as ag:
        g = GuestConfig(f"g@127.0.0.1:{ag.port}", specs=[EventSpec.parse(e) for e in guest_specs],
                        extra_args=list(extra))
        session = HostSession(tmp / "trace.dat", [EventSpec.parse("sched:sched_switch")], [g],
                              tsync_interval=-1)
        rec = Recording(session, command=command)
        rec.start()
        while rec.is_alive():
            if rec.state == "recording":
                seen.append(progress(session, rec.counts))
            rec.join(0.1)
        ag.proc.wait(timeout=30)
    log = ag.log
    assert rec.error is None, (rec.error, log)
    return rec, seen


def _check_final(rec: Recording, guest_file: Path) -> tuple[int, int, int]:
    tf = open_trace(guest_file)
    buf = tf.buffers[0]
    assert buf.events.num_rows > 0
    total_ev = total_lost = unknown = 0
    for st in buf.stats:
        c = rec.counts.counter("g", st.cpu)
        assert c is not None, f"no counter for guest CPU {st.cpu}"
        assert c.error is None
        assert (c.events, c.lost, c.lost_unknown_pages) == (st.events, st.lost_events, st.lost_unknown_pages), \
            (st.cpu, c.events, st)
        total_ev += c.events
        total_lost += c.lost
        unknown += c.lost_unknown_pages
    assert total_ev == buf.events.num_rows
    assert total_lost == sum(st.lost_events for st in buf.stats)
    return total_ev, total_lost, unknown


def test_live_counts_equal_the_guest_file(env_ok, tmp_path):
    rec, seen = _record(tmp_path, ["sched:sched_switch", "sched:sched_wakeup"],
                        "sh -c 'for i in $(seq 30); do ls / >/dev/null; sleep 0.05; done'")
    total, _lost, _unknown = _check_final(rec, tmp_path / "trace-g.dat")
    live = [sum(c.events or 0 for c in p.cpus if c.where == "g") for p in seen]  # None: not counted yet
    assert max(live) > 0, "no guest event counted while recording"
    assert max(live) <= total
    # the last progress shows the final counts
    final = progress(rec.session, rec.counts)
    assert sum(c.events for c in final.cpus if c.where == "g") == total


def test_live_lost_counts_equal_the_guest_file(env_ok, tmp_path):
    """A guest buffer of two pages flooded with syscall events: the kernel overwrites events, and the pages
    after a loss say so (with the count when it fits behind the data, else only the flag); live counting
    adds them up exactly as the reader does."""
    rec, _seen = _record(tmp_path, ["raw_syscalls:sys_enter"],
                         "dd if=/dev/zero of=/dev/null bs=1 count=1500000", "-b", "8")
    _total, lost, unknown = _check_final(rec, tmp_path / "trace-g.dat")
    assert lost + unknown > 0, "the flood lost nothing: the buffer was not small enough"


def test_a_damaged_guest_file_does_not_cost_the_host_file(env_ok, tmp_path):
    """The guest's file holds the agent's bytes; if they cannot be completed the host's file is still
    written (it was lost with them: write() raised before the host's turn) and the guest is named."""
    import time

    with our_agent(tmp_path) as ag:
        g = GuestConfig(f"g@127.0.0.1:{ag.port}", specs=[EventSpec.parse("sched:sched_switch")])
        session = HostSession(tmp_path / "trace.dat", [EventSpec.parse("sched:sched_switch")], [g],
                              tsync_interval=-1)
        session.start()
        try:
            time.sleep(0.5)
            session.stop()
            gfile = tmp_path / "trace-g.dat"
            data = bytearray(gfile.read_bytes())
            at = data.index(b"\0", 10) + 1 + 6  # after "\x17\x08\x44tracing" "7\0", endian, long, page size
            data[at:at + 2] = b"\xff\xfe"  # the compression name is no longer text
            gfile.write_bytes(bytes(data))
            files = session.write()
        finally:
            session.close()
    assert files == [tmp_path / "trace.dat"]
    assert session.unfinished_guests == ["g"]
    assert "could not be completed" in (session.guests[0].error or "")
    host = open_trace(tmp_path / "trace.dat")
    assert host.buffers[0].events.num_rows > 0

"""Which host thread runs each guest VCPU, and where that knowledge came from.

Sources, in order of trust:
  1. the host file's GUEST record (trace-cmd writes real thread ids only for vsock guests; over
     TCP it writes -1);
  2. the host's kvm_entry events: the ``vcpu_id`` field and the pid that logged it (only when one
     guest is loaded, since kvm_entry does not say which VM it belongs to);
  3. a map the user gives (``--vcpu-map GUEST:VCPU=PID,...``, the GUI dialog, a session file).
Each mapping records its source, so the UI can say how sure it is.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .columns import event_columns
from .errors import VcpuMapError
from .session import Session

SOURCE_RECORD = "guest record"
SOURCE_KVM = "kvm_entry"
SOURCE_USER = "user"


MAX_VCPU = 65535
"""Largest VCPU number a map may name: KVM's limit is 4096 on x86 (KVM_MAX_VCPUS), with room to spare."""
MAX_PID = 4 * 1024 * 1024
"""Linux's PID_MAX_LIMIT: no thread id is larger."""
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class VcpuMapping:
    guest: str
    vcpu: int
    host_pid: int
    source: str


def parse_vcpu_map_arg(text: str) -> dict[str, dict[int, int]]:
    """``GUEST:VCPU=PID,VCPU=PID[;GUEST2:...]`` or ``GUEST:0=12,GUEST:1=13`` -> {guest: {vcpu: pid}}."""
    out: dict[str, dict[int, int]] = {}
    guest = None
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            guest, part = part.split(":", 1)
        if guest is None or "=" not in part:
            raise VcpuMapError(f"bad VCPU map item {part!r}: expected GUEST:VCPU=PID")
        v, p = (s.strip() for s in part.split("=", 1))
        if not (_DIGITS.fullmatch(v) and _DIGITS.fullmatch(p)):
            raise VcpuMapError(f"bad VCPU map item {part!r}: VCPU and PID must be whole numbers")
        vcpu, pid = (int(x) if len(x) <= 12 else 10**12 for x in (v, p))  # past any range, int() stays cheap
        if vcpu > MAX_VCPU:
            raise VcpuMapError(f"bad VCPU map item {part!r}: VCPU {v} is out of range (0..{MAX_VCPU})")
        if not 0 < pid <= MAX_PID:
            raise VcpuMapError(f"bad VCPU map item {part!r}: PID {p} is out of range (1..{MAX_PID})")
        out.setdefault(guest, {})[vcpu] = pid
    return out


def load_vcpu_threads_json(path: str | Path) -> dict[int, int]:
    """A QMP ``query-cpus-fast`` dump (as in shared/traces/vm*/vcpu-threads.json) -> {vcpu: thread id}."""
    try:
        data = json.loads(Path(path).read_text())
        return {int(v["cpu-index"]): int(v["thread-id"]) for v in data["vcpus"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VcpuMapError(f"{path}: not a vcpu-threads JSON file ({e})") from e


def kvm_entry_pairs(session: Session) -> dict[int, int]:
    """vcpu_id -> host pid from the host's kvm_entry events (most frequent pid per VCPU)."""
    hs = session.host_stream
    if hs is None:
        return {}
    rows, cols = event_columns(hs.buffer, "kvm_entry", ["vcpu_id"], system="kvm", numbers_only=True)
    if not len(rows) or "vcpu_id" not in cols:
        return {}
    pids = hs.buffer.events.column("pid").to_numpy()[rows]
    vcpu = np.asarray(cols["vcpu_id"]).astype(np.int64)
    out: dict[int, int] = {}
    for v in np.unique(vcpu).tolist():
        c = Counter(pids[vcpu == v].tolist())
        out[int(v)] = int(c.most_common(1)[0][0])
    return out


def build_vcpu_map(session: Session, user: dict[str, dict[int, int]] | None = None) -> list[VcpuMapping]:
    """The VCPU -> host thread map of every guest in the session (see the module doc for sources)."""
    user = user or {}
    kvm = kvm_entry_pairs(session) if len(session.guests) == 1 else {}
    if len(session.guests) > 1 and kvm_entry_pairs(session):
        session.warnings.append("kvm_entry events cannot be attributed to one of several guests; "
                                "give the VCPU map (--vcpu-map, or Edit VCPU map... in the window) for guests "
                                "without a host record")
    out: list[VcpuMapping] = []
    for g in session.guests:
        mine = user.get(g.name, {})
        for v in range(g.vcpu_count):
            rec = g.record.vcpu_pids[v] if g.record and v < len(g.record.vcpu_pids) else -1
            if rec >= 0:
                out.append(VcpuMapping(g.name, v, rec, SOURCE_RECORD))
            elif v in kvm:
                out.append(VcpuMapping(g.name, v, kvm[v], SOURCE_KVM))
            elif v in mine:
                out.append(VcpuMapping(g.name, v, mine[v], SOURCE_USER))
        unknown = set(mine) - set(range(g.vcpu_count))
        if unknown:
            session.warnings.append(f"guest {g.name!r}: the VCPU map names VCPUs {sorted(unknown)} it does not have")
    for name in set(user) - {g.name for g in session.guests}:
        session.warnings.append(f"the VCPU map names guest {name!r}, which is not loaded")
    return out


SUMMARY_SCHEMA = pa.schema([
    ("guest", pa.string()), ("vcpu", pa.int32()), ("host_pid", pa.int32()), ("host_comm", pa.string()),
    ("source", pa.string()), ("guest_events", pa.int64()), ("in_guest_ns", pa.int64()),
    ("in_guest_basis", pa.string()), ("outside", pa.int64()), ("judged", pa.int64()),
])


def _host_intervals(session: Session, pid: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(starts, ends, basis) of the time a VCPU thread spent in its guest: kvm_entry -> kvm_exit
    when the host traced kvm events for that thread, else the thread's own time on a host CPU
    (a software-emulated guest runs guest code whenever its VCPU thread runs)."""
    hs = session.host_stream
    g = session.in_guest(hs.index)
    if g.num_rows:
        sel = g.column("pid").to_numpy() == pid
        if sel.any():
            s = g.column("start").to_numpy()[sel]
            e = g.column("end").to_numpy()[sel]
            o = np.argsort(s, kind="stable")
            return s[o], e[o], "kvm_entry/kvm_exit"
    runs = session.runs(hs.index)
    sel = runs.column("pid").to_numpy() == pid
    s = runs.column("start").to_numpy()[sel]
    e = runs.column("end").to_numpy()[sel]
    o = np.argsort(s, kind="stable")
    return s[o], e[o], "thread on host CPU"


def vcpu_summary(session: Session, mappings: list[VcpuMapping], tolerance_ns: int = 50_000) -> pa.Table:
    """Per guest VCPU: its host thread, where the mapping came from, guest events on it, the time the
    host spent in that guest on its behalf, and the causality check (guest events at host times when
    the thread was not in guest mode, of those the host's span could judge)."""
    from ..loaders.tasks import task_comm, task_names
    from ..loaders.text import display
    from .timesync import causality_check

    hs = session.host_stream
    of_host = [st.index for st in session.streams if session.host is not None and st.trace is session.host]
    if of_host:
        names = session.task_names(of_host[0])  # the host file's names, computed once per session
    else:
        names = task_names(session.host.buffers, session.host.formats, session.host.cmdlines) if session.host else {}
    by = {(m.guest, m.vcpu): m for m in mappings}
    rows = []
    span = (0, 0)
    if hs is not None and len(hs.buffer.events):
        ts = hs.buffer.events.column("ts").to_numpy()
        span = (int(ts.min()), int(ts.max()))
    for g in session.guests:
        st = next((s for s in session.streams if s.guest is g and s.buffer.name == ""), None)
        if st is not None:
            gts = st.buffer.events.column("ts").to_numpy()
            gcpu = st.buffer.events.column("cpu").to_numpy()
        else:  # a cut guest file whose top buffer's index is lost: its VCPUs are listed, with no events
            gts = np.zeros(0, np.int64)
            gcpu = np.zeros(0, np.int16)
        for v in range(g.vcpu_count):
            m = by.get((g.name, v))
            row = {"guest": g.name, "vcpu": v, "host_pid": m.host_pid if m else -1,
                   "host_comm": display(task_comm(names, m.host_pid)) if m else "",
                   "source": m.source if m else "unmapped",
                   "guest_events": int((gcpu == v).sum()), "in_guest_ns": 0, "in_guest_basis": "",
                   "outside": 0, "judged": 0}
            if m is not None and hs is not None:
                s, e, basis = _host_intervals(session, m.host_pid)
                row["in_guest_ns"] = int((e - s).sum())
                row["in_guest_basis"] = basis
                if g.synced:
                    c = causality_check(gts, gcpu, v, s, e, span, tolerance_ns)
                    row["outside"], row["judged"] = c.outside, c.events
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def causality_by_vcpu(session: Session, mappings: list[VcpuMapping]) -> dict[tuple[str, int], tuple[int, int]]:
    """(guest, vcpu) -> (events outside in-guest time, events judged), for synchronized guests."""
    t = vcpu_summary(session, mappings)
    out = {}
    for r in t.to_pylist():
        if r["judged"]:
            out[(r["guest"], r["vcpu"])] = (r["outside"], r["judged"])
    return out

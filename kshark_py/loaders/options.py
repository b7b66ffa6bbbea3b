"""Typed options: what a trace file says about itself (spec §7, host-guest-timesync.md §2).

Each option id has a parser producing a small frozen dataclass; :class:`TraceMetadata` gathers
them.  An option we do not know is kept as :class:`RawOption` (its bytes) and noted in
``TraceMetadata.warnings``: never fatal, since trace-cmd itself only warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cnum import strtoll
from .errors import CorruptSectionError
from .layout import Layouts, OptionId, cstring_at, unpack_at
from .text import trace_clocks

MAX_CPUS = 1 << 15
"""CPU ids are int16 in the events table; a larger id in a BUFFER option is corruption."""


@dataclass(frozen=True)
class CpuData:
    """One CPU's ring-buffer data: where it lies in the file (compressed or not)."""

    cpu: int
    offset: int
    size: int


@dataclass(frozen=True)
class BufferOption:
    """A BUFFER option: one tracing instance ("" = top) and its per-CPU data."""

    name: str
    section_offset: int
    """v7: offset of the flyrecord section header; v6: offset of the "flyrecord" tag."""
    clock: str | None = None
    page_size: int | None = None
    cpus: tuple[CpuData, ...] = ()


@dataclass(frozen=True)
class BufferTextOption:
    """A BUFFER_TEXT option (v7 latency trace)."""

    name: str
    section_offset: int
    clock: str


@dataclass(frozen=True)
class GuestOption:
    """GUEST (host file): a guest's name, its trace id and which host thread runs each VCPU."""

    name: str
    trace_id: int
    vcpu_pids: tuple[int, ...]
    """Host thread id per VCPU (index = VCPU); -1 where trace-cmd did not know it (TCP guests)."""


@dataclass(frozen=True)
class TimeShiftCpu:
    """The time-sync samples of one guest VCPU, sorted by time, duplicates dropped (as libtracecmd)."""

    times: tuple[int, ...]
    offsets: tuple[int, ...]
    scalings: tuple[int, ...]
    fractions: tuple[int, ...]


@dataclass(frozen=True)
class TimeShiftOption:
    """TIME_SHIFT (guest file): how to put this file's timestamps on the peer's (host's) clock."""

    peer_trace_id: int
    flags: int
    cpus: tuple[TimeShiftCpu, ...]


@dataclass(frozen=True)
class Tsc2Nsec:
    """TSC2NSEC: ns = mul_u64_u32_shr(ts, mult, shift); the offset field is ignored by trace-cmd."""

    mult: int
    shift: int
    offset: int


@dataclass(frozen=True)
class RawOption:
    """An option we do not interpret, kept byte for byte."""

    id: int
    payload: bytes
    offset: int


@dataclass
class TraceMetadata:
    """Everything the options of one file say, typed."""

    date_offsets_us: list[int] = field(default_factory=list)
    cpustats: list[str] = field(default_factory=list)
    buffers: list[BufferOption] = field(default_factory=list)
    buffer_texts: list[BufferTextOption] = field(default_factory=list)
    trace_clock_text: str | None = None
    uname: str | None = None
    hooks: list[str] = field(default_factory=list)
    offsets_ns: list[int] = field(default_factory=list)
    cpu_count: int | None = None
    version: str | None = None
    procmaps: str | None = None
    trace_id: int | None = None
    time_shift: TimeShiftOption | None = None
    guests: list[GuestOption] = field(default_factory=list)
    tsc2nsec: Tsc2Nsec | None = None
    section_offsets: dict[int, int] = field(default_factory=dict)
    """v7: option id (HEADER_INFO..CMDLINES) -> offset of that metadata section's header."""
    raw: list[RawOption] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def trace_clock(self) -> str | None:
        """The selected clock: the bracketed token of TRACECLOCK (``[local] global ...``)."""
        if self.trace_clock_text is None:
            return None
        text = self.trace_clock_text
        return trace_clocks(text)[1] or text.strip() or None

    @property
    def ts_offset(self) -> int:
        """The file-wide nanosecond offset trace-cmd adds to every timestamp (OFFSET + DATE)."""
        return sum(self.offsets_ns) + 1000 * sum(self.date_offsets_us)


def _text(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_option(meta: TraceMetadata, opt_id: int, payload: bytes, offset: int, lay: Layouts,
                 version: int) -> None:
    """Interpret one option record (``payload`` starts at file offset ``offset``) into ``meta``."""
    what = f"option {OptionId(opt_id).name if opt_id in OptionId._value2member_map_ else opt_id}"

    def bad(msg: str) -> CorruptSectionError:
        return CorruptSectionError(f"{what}: {msg}", section="options", offset=offset)

    if opt_id == OptionId.DATE:
        meta.date_offsets_us.append(strtoll(_text(payload)))
    elif opt_id == OptionId.CPUSTAT:
        meta.cpustats.append(_text(payload))
    elif opt_id == OptionId.BUFFER:
        meta.buffers.append(_parse_buffer(payload, offset, lay, version, what))
    elif opt_id == OptionId.BUFFER_TEXT:
        (sec,) = unpack_at(lay.u64, payload, 0, what, base=offset)
        name, pos = cstring_at(payload, 8, what, base=offset)
        clock, pos = cstring_at(payload, pos, what, base=offset)
        meta.buffer_texts.append(BufferTextOption(name, sec, clock))
    elif opt_id == OptionId.TRACECLOCK:
        meta.trace_clock_text = _text(payload).strip()
    elif opt_id == OptionId.UNAME:
        meta.uname = _text(payload)
    elif opt_id == OptionId.HOOK:
        meta.hooks.append(_text(payload))
    elif opt_id == OptionId.OFFSET:
        meta.offsets_ns.append(strtoll(_text(payload)))
    elif opt_id == OptionId.CPUCOUNT:
        (meta.cpu_count,) = unpack_at(lay.u32, payload, 0, what, base=offset)
        if meta.cpu_count > MAX_CPUS:  # the file's CPU count sizes per-CPU rows, lists and --cpu slots
            raise CorruptSectionError(f"{what}: CPUCOUNT {meta.cpu_count} (at most {MAX_CPUS} CPUs supported)",
                                      section="options", offset=offset)
    elif opt_id == OptionId.VERSION:
        meta.version = _text(payload)
    elif opt_id == OptionId.PROCMAPS:
        meta.procmaps = _text(payload)
    elif opt_id == OptionId.TRACEID:
        (meta.trace_id,) = unpack_at(lay.u64, payload, 0, what, base=offset)
    elif opt_id == OptionId.TIME_SHIFT:
        if len(payload) < 16:  # libtracecmd ignores a TIME_SHIFT this short
            meta.warnings.append(f"{what} at byte {offset}: only {len(payload)} bytes, ignored")
        else:
            meta.time_shift = _parse_time_shift(payload, offset, lay, bad)
    elif opt_id == OptionId.GUEST:
        name, pos = cstring_at(payload, 0, what, base=offset)
        tid, count = unpack_at(lay.u64, payload, pos, what, base=offset)[0], None
        (count,) = unpack_at(lay.u32, payload, pos + 8, what, base=offset)
        pos += 12
        if pos + count * lay.guest_vcpu.size > len(payload):
            raise bad(f"{count} VCPUs do not fit in {len(payload)} bytes")
        pids = [-1] * count
        for i in range(count):
            vcpu, pid = lay.guest_vcpu.unpack_from(payload, pos + i * lay.guest_vcpu.size)
            if vcpu >= count:
                raise bad(f"VCPU id {vcpu} >= VCPU count {count}")
            pids[vcpu] = pid
        meta.guests.append(GuestOption(name, tid, tuple(pids)))
    elif opt_id == OptionId.TSC2NSEC:
        meta.tsc2nsec = Tsc2Nsec(*unpack_at(lay.tsc2nsec, payload, 0, what, base=offset))
    elif OptionId.HEADER_INFO <= opt_id <= OptionId.CMDLINES:
        (meta.section_offsets[opt_id],) = unpack_at(lay.u64, payload, 0, what, base=offset)
    else:
        meta.raw.append(RawOption(opt_id, bytes(payload), offset))
        meta.warnings.append(f"unknown option id {opt_id} ({len(payload)} bytes) at byte {offset}, kept raw")


def _parse_buffer(payload: bytes, offset: int, lay: Layouts, version: int, what: str) -> BufferOption:
    (sec,) = unpack_at(lay.u64, payload, 0, what, base=offset)
    name, pos = cstring_at(payload, 8, what, base=offset)
    if version < 7:
        return BufferOption(name, sec)
    clock, pos = cstring_at(payload, pos, what, base=offset)
    page_size, count = unpack_at(lay.u32, payload, pos, what, base=offset)[0], 0
    (count,) = unpack_at(lay.u32, payload, pos + 4, what, base=offset)
    pos += 8
    ent = lay.buffer_cpu
    if pos + count * ent.size > len(payload):
        raise CorruptSectionError(f"{what}: {count} CPU entries do not fit in {len(payload)} bytes",
                                  section="options", offset=offset)
    cpus = tuple(CpuData(*ent.unpack_from(payload, pos + i * ent.size)) for i in range(count))
    for cd in cpus:
        if cd.cpu >= MAX_CPUS:
            raise CorruptSectionError(f"{what}: CPU id {cd.cpu} (at most {MAX_CPUS - 1} supported)",
                                      section="options", offset=offset)
    return BufferOption(name, sec, clock, page_size, cpus)


def _parse_time_shift(payload: bytes, offset: int, lay: Layouts, bad) -> TimeShiftOption:
    peer, flags, ncpus = lay.time_shift_head.unpack_from(payload, 0)
    pos = lay.time_shift_head.size
    if ncpus > (len(payload) - pos) // 4:
        raise bad(f"{ncpus} VCPUs do not fit in {len(payload)} bytes")
    per_cpu: list[tuple[list[int], list[int], list[int]]] = []
    s64 = lay.i64
    for _ in range(ncpus):
        (count,) = unpack_at(lay.u32, payload, pos, "TIME_SHIFT sample count", base=offset)
        pos += 4
        need = 3 * 8 * count
        if pos + need > len(payload):
            raise bad(f"{count} samples do not fit in the {len(payload)}-byte option")
        vals = [s64.unpack_from(payload, pos + 8 * k)[0] for k in range(3 * count)]
        pos += need
        per_cpu.append((vals[:count], vals[count:2 * count], vals[2 * count:]))
    fractions: list[list[int]] = []
    for v, (times, _o, _s) in enumerate(per_cpu):
        count = len(times)
        if pos + 8 * count <= len(payload):
            frac = [s64.unpack_from(payload, pos + 8 * k)[0] for k in range(count)]
            for k, f in enumerate(frac):
                # a shift count: libtracecmd's "(ts * scaling) >> fraction" is undefined outside 0..63
                if not 0 <= f < 64:
                    raise CorruptSectionError(f"option TIME_SHIFT: VCPU {v} sample {k}: {f} fraction bits "
                                              "(a 64-bit shift, must be 0..63)", section="options",
                                              offset=offset + pos + 8 * k)
            fractions.append(frac)
            pos += 8 * count
        else:
            fractions.append([0] * count)
    cpus = []
    for (times, offs, scal), frac in zip(per_cpu, fractions, strict=True):
        # libtracecmd sorts by time and drops samples whose time repeats
        order = sorted(range(len(times)), key=lambda k: times[k])
        keep: list[int] = []
        for k in order:
            if keep and times[keep[-1]] == times[k]:
                continue
            keep.append(k)
        cpus.append(TimeShiftCpu(tuple(times[k] for k in keep), tuple(offs[k] for k in keep),
                                 tuple(scal[k] for k in keep), tuple(frac[k] for k in keep)))
    return TimeShiftOption(peer, flags, tuple(cpus))

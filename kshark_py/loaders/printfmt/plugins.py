"""Event-specific formatters that replace the print fmt, as libtraceevent's plugins do.

Debian's ``libtraceevent1-plugin`` (1.7.1) installs: sched_switch, kvm, hrtimer, function, kmem,
tlb, jbd2, xen, scsi, futex, mac80211, cfg80211.  ``trace-cmd report`` loads all of them, so the
info text of their events is what these C handlers print, not the kernel's print fmt.  Each port
below follows the C code (libtraceevent ``plugins/plugin_*.c``) including its oddities: field
values are read unsigned (``tep_get_field_val``), a missing field prints ``<CANT FIND FIELD x>``,
and a handler returning non-zero lets the print fmt be printed after its own text.

A handler is ``handler(tev, data, cpu) -> (text, also_print_fmt)``.  The print-fmt helper
functions the plugins register (``jiffies_to_msecs``, ``scsi_trace_parse_cdb`` ...) are in
:mod:`.plugin_funcs`.

Not ported: the ``ftrace`` plugin options (``parent``, ``offset``: trace-cmd's defaults are used),
trace-cmd's own function-graph handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..cnum import U64, s32, s64
from ..text import decode
from .event import TEvent
from .field import TField
from .plugin_funcs import print_functions
from .plugin_kvm import SVM_EXIT_REASONS, VMX_EXIT_REASONS, KvmPlugin
from .printf import c_int, c_str, parse_spec

if TYPE_CHECKING:
    from .context import RenderContext
    from .evaluator import Evaluator


Handler = Callable[[TEvent, bytes, int], tuple[str, bool]]

__all__ = ["PluginSet", "SVM_EXIT_REASONS", "VMX_EXIT_REASONS", "print_functions", "printf1"]


def printf1(fmt: str, val: int | str) -> str:
    """trace_seq_printf(fmt, one_arg) for the simple formats plugins use (one conversion)."""
    i = fmt.find("%")
    while i >= 0 and fmt[i + 1:i + 2] == "%":
        i = fmt.find("%", i + 2)
    if i < 0:
        return fmt.replace("%%", "%")
    j = i + 1
    while j < len(fmt) and fmt[j] in "-+ #0123456789.hlLzjt":
        j += 1
    conv = fmt[j:j + 1]
    spec_txt = fmt[i:j + 1]
    pre = fmt[:i].replace("%%", "%")
    post = fmt[j + 1:].replace("%%", "%")
    mods = spec_txt[1:-1]
    if conv == "s":
        return pre + c_str(parse_spec(spec_txt), str(val)) + post
    bits = 64 if "l" in mods or "z" in mods or "j" in mods else (16 if "h" in mods else 32)
    if "hh" in mods:
        bits = 8
    return pre + c_int(parse_spec(spec_txt), int(val), bits) + post


class Renderer(Protocol):
    """What the handlers use of their renderer (:class:`~.renderer.InfoRenderer`, which
    imports this module): its evaluator and its context."""

    ev: Evaluator
    ctx: RenderContext


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


class PluginSet(KvmPlugin):
    """Binds plugin handlers to events of one renderer (they need its evaluator and symbols)."""

    def __init__(self, renderer: Renderer) -> None:
        self.r = renderer
        self.ev = renderer.ev
        self.registered_comms: dict[int, str] = {}
        """pid -> comm as sched plugins register them (tep_register_comm: first one wins)."""
        self._fstack: dict[int, list[str]] = {}
        self.ts = 0
        """The timestamp of the record being rendered (only func_repeats prints one)."""
        self._insn_text = ""
        """plugin_kvm's static disassembly buffer: a record with len 0 prints what the one before left."""
        self._table: dict[tuple[str, str], Handler] = {
            ("sched", "sched_switch"): self.sched_switch,
            ("sched", "sched_wakeup"): self.sched_wakeup,
            ("sched", "sched_wakeup_new"): self.sched_wakeup,
            ("timer", "hrtimer_expire_entry"): self.hrtimer_expire,
            ("timer", "hrtimer_start"): self.hrtimer_start,
            ("syscalls", "sys_enter_futex"): self.sys_enter_futex,
            ("mac80211", "drv_bss_info_changed"): self.drv_bss_info_changed,
            ("ftrace", "function"): self.function,
            ("ftrace", "kernel_stack"): self.kernel_stack,
            ("ftrace", "raw_data"): self.raw_data,
            ("ftrace", "func_repeats"): self.func_repeats,
            ("kmem", "kfree"): self.call_site,
            ("kmem", "kmalloc"): self.call_site,
            ("kmem", "kmalloc_node"): self.call_site,
            ("kmem", "kmem_cache_alloc"): self.call_site,
            ("kmem", "kmem_cache_alloc_node"): self.call_site,
            ("kmem", "kmem_cache_free"): self.call_site,
            ("tlb", "tlb_flush"): self.tlb_flush,
            ("kvm", "kvm_exit"): self.kvm_exit,
            ("kvm", "kvm_entry"): self.kvm_entry,
            ("kvm", "kvm_emulate_insn"): self.kvm_emulate_insn,
            ("kvm", "kvm_nested_vmexit"): self.kvm_nested_vmexit,
            ("kvm", "kvm_nested_vmexit_inject"): self.kvm_nested_vmexit_inject,
            ("kvmmmu", "kvm_mmu_get_page"): self.kvm_mmu_get_page,
            ("kvmmmu", "kvm_mmu_sync_page"): self.kvm_mmu_role,
            ("kvmmmu", "kvm_mmu_unsync_page"): self.kvm_mmu_role,
            ("kvmmmu", "kvm_mmu_zap_page"): self.kvm_mmu_role,
            ("kvmmmu", "kvm_mmu_prepare_zap_page"): self.kvm_mmu_role,
        }

    def handler_for(self, tev: TEvent) -> Handler | None:
        """The plugin handler that overrides this event's print fmt, if any."""
        return self._table.get((tev.system, tev.name))

    # -- helpers (tep_get_field_val & co) ------------------------------------------------------
    def _val(self, tev: TEvent, name: str, data: bytes) -> int | None:
        f = tev.find_field(name)
        if f is None or f.size not in (1, 2, 4, 8):
            return None
        return self.ev.read(data, f.offset, f.size)

    def _val_err(self, tev: TEvent, name: str, data: bytes, out: list[str]) -> int | None:
        f = tev.find_field(name)
        if f is None:
            out.append(f"<CANT FIND FIELD {name}>")
            return None
        if f.size not in (1, 2, 4, 8):
            out.append(f" {name}=INVALID")
            return None
        return self.ev.read(data, f.offset, f.size)

    def _num_field(self, out: list[str], fmt: str, tev: TEvent, name: str, data: bytes, err: bool) -> bool:
        v = self._val(tev, name, data)
        if v is None:
            if err:
                out.append(f'CAN\'T FIND FIELD "{name}"')
            return False
        out.append(printf1(fmt, v))
        return True

    def _func_field(self, out: list[str], fmt: str, tev: TEvent, name: str, data: bytes, err: bool) -> None:
        v = self._val(tev, name, data)
        if v is None:
            if err:
                out.append(f'CAN\'T FIND FIELD "{name}"')
            return
        out.append(self._func_text(fmt, tev.find_field(name), data))

    def _func_text(self, fmt: str, f: TField, data: bytes) -> str:
        """tep_print_func_field's text for a readable field: "name/0x(start - value)" or the value."""
        v = self.ev.read(data, f.offset, f.size)
        fn = self.ev.find_func(v)
        if fn is not None:
            tmp = f"{fn[0]}/0x{(fn[1] - v) & U64:x}"
        else:
            tmp = f"0x{v:08x}"
        return printf1(fmt, tmp)

    def _comm(self, f: TField, data: bytes, pid: int) -> str:
        comm = data[f.offset:f.offset + f.size]
        nul = comm.find(b"\0")
        if nul >= 0:
            comm = comm[:nul]
        s = decode(comm)
        pid = s32(pid)
        if pid and pid not in self.registered_comms:
            self.registered_comms[pid] = s
        return s

    # -- sched_switch plugin ------------------------------------------------------------------
    def sched_wakeup(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        pid = self._val_err(tev, "pid", data, out)
        if pid is None:
            return "".join(out) + "!", True
        f = tev.find_any_field("comm")
        if f is not None:
            out.append(self._comm(f, data, pid))
            out.append(":")
        out.append(str(pid))
        v = self._val_err(tev, "prio", data, out)
        if v is not None:
            out.append(f" [{v}]")
        v = self._val(tev, "success", data)
        if v is not None:
            out.append(f" success={v}")
        v = self._val(tev, "target_cpu", data)
        if v is not None:
            out.append(f" CPU:{v:03d}")
        return "".join(out), False

    def sched_switch(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        pid = self._val_err(tev, "prev_pid", data, out)
        if pid is None:
            return "".join(out) + "!", True
        f = tev.find_any_field("prev_comm")
        if f is not None:
            out.append(self._comm(f, data, pid))
            out.append(":")
        out.append(f"{pid} ")
        v = self._val(tev, "prev_prio", data)
        if v is not None:
            out.append(f"[{s32(v)}] ")
        v = self._val(tev, "prev_state", data)
        if v is not None:
            out.append(_write_state(v))
        out.append(" ==> ")
        pid = self._val_err(tev, "next_pid", data, out)
        if pid is None:
            return "".join(out) + "!", True
        f = tev.find_any_field("next_comm")
        if f is not None:
            out.append(self._comm(f, data, pid))
            out.append(":")
        out.append(str(pid))
        v = self._val(tev, "next_prio", data)
        if v is not None:
            out.append(f" [{s32(v)}]")
        return "".join(out), False

    # -- futex plugin -------------------------------------------------------------------------
    def sys_enter_futex(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        v: dict[str, int] = {}
        for name in ("uaddr", "op", "val", "utime", "uaddr2", "val3"):
            x = self._val_err(tev, name, data, out)
            if x is None:
                return "".join(out), True
            v[name] = x
        op = v["op"]
        cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) & U64
        if cmd >= len(FUTEX_OPS):
            return "", True  # an op the plugin does not know (FUTEX_LOCK_PI2 ...): the print fmt
        name, *fmts = FUTEX_OPS[cmd]
        out.append(f"op={name}")
        if op & FUTEX_PRIVATE_FLAG:
            out.append("|FUTEX_PRIVATE_FLAG")
        if op & FUTEX_CLOCK_REALTIME:
            out.append("|FUTEX_CLOCK_REALTIME")
        out.append(f" uaddr=0x{v['uaddr']:08x}")
        for fmt, key in zip(fmts, ("val", "utime", "uaddr2", "val3"), strict=True):
            if fmt:
                out.append(printf1(fmt, v[key]))
        return "".join(out), False

    # -- mac80211 plugin ------------------------------------------------------------------------
    def _mac_string(self, tev: TEvent, name: str, data: bytes) -> str:
        f = tev.find_field(name)
        if f is None:
            return f"NOTFOUND:{name}"
        off, ln = f.offset, f.size
        if f.type.startswith("__data_loc"):
            if f.size not in (1, 2, 4, 8):
                return "invalid_data_loc"
            v = self.ev.read(data, f.offset, f.size)
            off, ln = v & 0xFFFF, v >> 16
        s = data[off:off + ln]
        nul = s.find(b"\0")
        return decode(s if nul < 0 else s[:nul])

    def drv_bss_info_changed(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out = [self._mac_string(tev, "wiphy_name", data), " vif:", self._mac_string(tev, "vif_name", data)]
        self._num_field(out, "(%d)", tev, "vif_type", data, True)
        indent = "\n" + " " * 65
        for k, group in enumerate(_BSS_FIELDS):
            out.append(indent)
            for i, (name, hexa) in enumerate(group):
                self._num_field(out, f"{name}:%#x" if hexa else f"{name}:%d", tev, name, data, False)
                if i < len(group) - 1 or k == 0:
                    out.append(" ")
        return "".join(out), False

    # -- hrtimer plugin -----------------------------------------------------------------------
    def column_plan(self, tev: TEvent) -> list[tuple] | None:
        """The handler's text as pieces a block renderer can format a whole column at a time, or
        None (then it renders once per distinct payload).  Pieces: ``("lit", text)``, ``("hex",
        field, prefix)`` (``prefix%llx``), ``("dec", field)`` (``%llu``), ``("distinct", fields, fn)``
        (``fn(data)`` once per distinct value of those fields).  For handlers whose events mostly
        differ (hrtimer's times, kvm's guest RIPs and exit infos), where per payload is per event.
        """
        if tev.handler in (self.kvm_exit, self.kvm_entry):
            return self._kvm_plan(tev)
        if tev.handler not in (self.hrtimer_expire, self.hrtimer_start):
            return None
        plan: list[tuple] = [("lit", "hrtimer=")]
        f = self._num(tev, "timer") or self._num(tev, "hrtimer")
        plan.append(("hex", f, "0x") if f is not None else ("lit", 'CAN\'T FIND FIELD "hrtimer"'))
        func = self._num(tev, "function")
        fn_piece = [("distinct", [func], lambda data: self._func_text(" function=%s", func, data))] if func else []
        if tev.handler == self.hrtimer_start:
            plan += fn_piece
        names = ["now"] if tev.handler == self.hrtimer_expire else ["expires", "softexpires"]
        for name in names:
            plan.append(("lit", f" {name}="))
            f = self._num(tev, name)
            plan.append(("dec", f) if f is not None else ("lit", f'CAN\'T FIND FIELD "{name}"'))
        if tev.handler == self.hrtimer_expire:
            plan += fn_piece
        return plan

    @staticmethod
    def _num(tev: TEvent, name: str) -> TField | None:
        """The field tep_read_number_field can read, or None."""
        f = tev.find_field(name)
        return f if f is not None and f.size in (1, 2, 4, 8) else None

    def hrtimer_expire(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out = ["hrtimer="]
        if not self._num_field(out, "0x%llx", tev, "timer", data, False):
            self._num_field(out, "0x%llx", tev, "hrtimer", data, True)
        out.append(" now=")
        self._num_field(out, "%llu", tev, "now", data, True)
        self._func_field(out, " function=%s", tev, "function", data, False)
        return "".join(out), False

    def hrtimer_start(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out = ["hrtimer="]
        if not self._num_field(out, "0x%llx", tev, "timer", data, False):
            self._num_field(out, "0x%llx", tev, "hrtimer", data, True)
        self._func_field(out, " function=%s", tev, "function", data, False)
        out.append(" expires=")
        self._num_field(out, "%llu", tev, "expires", data, True)
        out.append(" softexpires=")
        self._num_field(out, "%llu", tev, "softexpires", data, True)
        return "".join(out), False

    # -- function plugin ----------------------------------------------------------------------
    def _add_and_get_index(self, parent: str, child: str | None, cpu: int) -> int:
        if cpu < 0:
            return 0
        st = self._fstack.setdefault(cpu, [])

        def add_child(name: str | None, pos: int) -> None:
            if name is None:
                return
            if pos < len(st):
                st[pos] = name
            else:
                st.append(name)

        for i, name in enumerate(st):
            if name == parent:
                add_child(child, i + 1)
                return i
        add_child(parent, 0)
        add_child(child, 1)
        return 0

    def function(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        ip = self._val_err(tev, "ip", data, out)
        if ip is None:
            return "".join(out) + "!", True
        fn = self.ev.find_func(ip)
        pip = self._val_err(tev, "parent_ip", data, out)
        if pip is None:
            return "".join(out) + "!", True
        parent = self.ev.find_func(pip)
        index = 0
        if parent is not None:
            index = self._add_and_get_index(parent[0], fn[0] if fn else None, cpu)
        out.append(" " * (index * 3))
        out.append(fn[0] if fn else f"0x{ip:x}")
        return "".join(out), False

    def func_repeats(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        """The function, its repeat count and the time of the last repeat: the record's time (set
        by InfoRenderer.info) minus the 48-bit delta the event carries."""
        text, _ = self.function(tev, data, cpu)
        out = [text]
        vals = []
        for name in ("count", "top_delta_ts", "bottom_delta_ts"):
            v = self._val_err(tev, name, data, out)
            if v is None:
                return "".join(out) + "!", True
            vals.append(v)
        count, top, bottom = vals
        last = (self.ts - ((top << 32) | bottom)) & U64
        when = self.r.ctx.time_text(last) if self.r.ctx.time_text else _usecs(last)
        out.append(f" (count: {s64(count)}  last_ts: {when})")
        return "".join(out), False

    def kernel_stack(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        f = tev.find_any_field("caller")
        if f is None:
            return "<CANT FIND FIELD caller>", False
        out = ["<stack trace >\n"]
        ls = self.ev.long_size
        p = f.offset
        while p < len(data):
            addr = self.ev.read(data, p, ls) if p + ls <= len(data) else 0
            if (ls == 8 and addr == U64) or (addr & 0xFFFFFFFF) == 0xFFFFFFFF:
                break
            fn = self.ev.find_func(addr)
            if fn is not None:
                out.append(f"=> {fn[0]} ({addr:x})\n")
            else:
                out.append(f"=> {addr:x}\n")
            p += ls
        return "".join(out), False

    def raw_data(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        rid = self._val_err(tev, "id", data, out)
        if rid is None:
            return "".join(out) + "!", True
        out.append(f"# {rid:x}")
        f = tev.find_any_field("buf")
        if f is None:
            out.append("<CANT FIND FIELD buf>")
            return "".join(out), False
        out.extend(f" {b:02x}" for b in data[f.offset:])
        return "".join(out), False

    # -- kmem plugin ----------------------------------------------------------------------------
    def call_site(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        v = self._val(tev, "call_site", data)
        if v is None:
            return "", True
        fn = self.ev.find_func(v)
        if fn is None:
            return "", True
        return f"({fn[0]}+0x{(v - fn[1]) & 0xFFFFFFFF:x}) ", True

    # -- tlb plugin -----------------------------------------------------------------------------
    def tlb_flush(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out = ["pages="]
        self._num_field(out, "%ld", tev, "pages", data, True)
        v = self._val_err(tev, "reason", data, out)
        if v is None:
            return "".join(out), True
        out.append(" reason=")
        out.append({0: "flush on task switch", 1: "remote shootdown", 2: "local shootdown",
                    3: "local mm shootdown"}.get(v, ""))
        out.append(f" ({s64(v)})")
        return "".join(out), False

FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
FUTEX_OPS: list[tuple[str, str | None, str | None, str | None, str | None]] = [
    # name, then the formats of val, utime (val2), uaddr2, val3 (None: not printed)
    ("FUTEX_WAIT", " val=0x%08llx", " utime=0x%08llx", None, None),
    ("FUTEX_WAKE", " val=%llu", None, None, None),
    ("FUTEX_FD", " val=%llu", None, None, None),
    ("FUTEX_REQUEUE", " val=%llu", " val2=%llu", " uaddr2=0x%08llx", None),
    ("FUTEX_CMP_REQUEUE", " val=%llu", " val2=%llu", " uaddr2=0x%08llx", " val3=0x%08llx"),
    ("FUTEX_WAKE_OP", " val=%llu", " val2=%llu", " uaddr2=0x%08llx", " val3=0x%08llx"),
    ("FUTEX_LOCK_PI", None, " utime=0x%08llx", None, None),
    ("FUTEX_UNLOCK_PI", None, None, None, None),
    ("FUTEX_TRYLOCK_PI", None, None, None, None),
    ("FUTEX_WAIT_BITSET", " val=0x%08llx", " utime=0x%08llx", None, " val3=0x%08llx"),
    ("FUTEX_WAKE_BITSET", " val=%llu", None, None, " val3=0x%08llx"),
    ("FUTEX_WAIT_REQUEUE_PI", " val=0x%08llx", " utime=0x%08llx", " uaddr2=0x%08llx", " val3=0x%08llx"),
    ("FUTEX_CMP_REQUEUE_PI", " val=%llu", " val2=%llu", " uaddr2=0x%08llx", " val3=0x%08llx"),
]
"""plugin_futex's table, indexed by ``op & FUTEX_CMD_MASK``."""

_BSS_FIELDS = [
    [("assoc", False), ("aid", False), ("cts", False), ("shortpre", False), ("shortslot", False),
     ("dtimper", False)],
    [("bcnint", False), ("assoc_cap", True), ("basic_rates", True), ("enable_beacon", False)],
    [("ht_operation_mode", False)],
]
"""plugin_mac80211's drv_bss_info_changed lines: (field, printed with %#x) after each indent."""


def _usecs(ts: int) -> str:
    """TEP_PRINT_TIME with ``%6.1000d``: microseconds, rounded (in 64 bits), as "secs.usecs"."""
    t = ((ts + 500) & U64) // 1000
    return f"{t // 1000000:5d}.{t % 1000000:06d}"


def _write_state(val: int) -> str:
    states = "SDTtZXxW"
    v = val & 0xFFFFFFFF
    out = [states[i] for i in range(8) if v & (1 << i)]
    return "|".join(out) if out else "R"

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

Not ported: ``func_repeats``' ``last_ts`` (it needs the record's timestamp, which a handler does
not get; the function tracer cannot run on our recording hosts), the ``ftrace`` plugin options
(``parent``, ``offset``: trace-cmd's defaults are used), trace-cmd's own function-graph handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .plugin_funcs import print_functions
from .printfmt import Spec, TEvent, TField, c_int, c_str
from .text import decode

if TYPE_CHECKING:
    from .printfmt import InfoRenderer

U64 = 0xFFFFFFFFFFFFFFFF

Handler = Callable[[TEvent, bytes, int], tuple[str, bool]]

__all__ = ["PluginSet", "print_functions", "printf1"]


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >> 63 else v


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
        return pre + c_str(_spec(spec_txt), str(val)) + post
    bits = 64 if "l" in mods or "z" in mods or "j" in mods else (16 if "h" in mods else 32)
    if "hh" in mods:
        bits = 8
    return pre + c_int(_spec(spec_txt), int(val), bits) + post


def _spec(txt: str) -> Spec:
    from .printfmt import _parse_spec

    return _parse_spec(txt)


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


class PluginSet:
    """Binds plugin handlers to events of one renderer (they need its evaluator and symbols)."""

    def __init__(self, renderer: InfoRenderer) -> None:
        self.r = renderer
        self.ev = renderer.ev
        self.registered_comms: dict[int, str] = {}
        """pid -> comm as sched plugins register them (tep_register_comm: first one wins)."""
        self._fstack: dict[int, list[str]] = {}
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
        pid = _s32(pid)
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
            out.append(f"[{_s32(v)}] ")
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
            out.append(f" [{_s32(v)}]")
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

    def _kvm_plan(self, tev: TEvent) -> list[tuple] | None:
        """kvm_exit / kvm_entry in column pieces; None where the handler would fail over to the print
        fmt (a field it needs is missing) or print ``%u`` of an 8-byte vcpu_id."""
        exit_ = tev.handler == self.kvm_exit
        rip = self._num(tev, "guest_rip" if exit_ else "rip")
        if rip is None:
            return None
        plan: list[tuple] = []
        if exit_:
            reason = self._num(tev, "exit_reason")
            if reason is None:
                return None
            isa = self._num(tev, "isa")

            def reason_text(data: bytes) -> str:
                out: list[str] = []
                self._exit_reason(tev, data, "exit_reason", out)
                return "".join(out)

            plan.append(("distinct", [reason] + ([isa] if isa else []), reason_text))
        else:
            vcpu = self._num(tev, "vcpu_id")
            if vcpu is not None and vcpu.size > 4:
                return None
            plan += [("lit", " vcpu "), ("dec", vcpu)] if vcpu else [("lit", 'CAN\'T FIND FIELD "vcpu_id"')]
        plan += [("lit", " rip "), ("hex", rip, "0x")]
        pid = tev.find_any_field("common_pid")
        if self.r.ctx.guest_func is not None:

            def function(data: bytes) -> str:
                out: list[str] = []
                self._rip_function(tev, data, self.ev.read(data, rip.offset, rip.size), out)
                return "".join(out)

            plan.append(("distinct", [f for f in (pid, rip) if f is not None], function))
        if exit_:
            i1, i2 = self._num(tev, "info1"), self._num(tev, "info2")
            if i1 is not None and i2 is not None:
                plan += [("lit", " info "), ("hex", i1, ""), ("lit", " "), ("hex", i2, "")]
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
        # The "last_ts" part needs the record timestamp, which the renderer does not get.
        text, _ = self.function(tev, data, cpu)
        out = [text]
        count = self._val_err(tev, "count", data, out)
        if count is None:
            return "".join(out) + "!", True
        out.append(f" (count: {_s64(count)}  last_ts: ")
        out.append(")")
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
        out.append(f" ({_s64(v)})")
        return "".join(out), False

    # -- kvm plugin -------------------------------------------------------------------------------
    def _exit_reason(self, tev: TEvent, data: bytes, name: str, out: list[str]) -> bool:
        val = self._val_err(tev, name, data, out)
        if val is None:
            return False
        isa = self._val(tev, "isa", data)
        if isa is None:
            isa = 1
        table = {1: VMX_EXIT_REASONS, 2: SVM_EXIT_REASONS}.get(isa & 0xFFFFFFFF)
        if table is None:
            out.append("reason UNKNOWN-ISA")
            return True
        reason = table.get(_s32(val))
        if reason is not None:
            out.append(f"reason {reason}")
        else:
            out.append(f"reason UNKNOWN ({val})")
        return True

    def _rip_function(self, tev: TEvent, data: bytes, rip: int, out: list[str]) -> None:
        gf = self.r.ctx.guest_func
        if gf is None:
            return
        pid_f = tev.find_any_field("common_pid")
        pid = _s32(self.ev.read(data, pid_f.offset, pid_f.size)) if pid_f else 0
        r = gf(pid, rip)
        if r is None:
            return
        out.append(f" {r[0]}")
        if r[1] != rip:
            out.append(f"+0x{(rip - r[1]) & U64:x}")

    def kvm_exit(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        if not self._exit_reason(tev, data, "exit_reason", out):
            return "".join(out), True
        rip = self._val_err(tev, "guest_rip", data, out)
        if rip is None:
            return "".join(out), True
        out.append(f" rip 0x{rip:x}")
        self._rip_function(tev, data, rip, out)
        i1 = self._val(tev, "info1", data)
        i2 = self._val(tev, "info2", data)
        if i1 is not None and i2 is not None:
            out.append(f" info {i1:x} {i2:x}")
        return "".join(out), False

    def kvm_entry(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        self._num_field(out, " vcpu %u", tev, "vcpu_id", data, True)
        rip = self._val_err(tev, "rip", data, out)
        if rip is None:
            return "".join(out), True
        out.append(f" rip 0x{rip:x}")
        self._rip_function(tev, data, rip, out)
        return "".join(out), False

    def kvm_emulate_insn(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        vals = {}
        for n in ("rip", "csbase", "len", "flags", "failed"):
            v = self._val_err(tev, n, data, out)
            if v is None:
                return "".join(out), True
            vals[n] = v
        f = tev.find_field("insn")
        if f is None:
            out.append("<CANT FIND FIELD insn>")
            return "".join(out), True
        off = f.offset
        if f.flags & 16:  # dynamic
            off = self.ev.read(data, f.offset, f.size) & 0xFFFF
        ln = vals["len"] & 0xFFFFFFFF
        if ln:
            insn = data[off:off + ln].ljust(ln, b"\0")  # (the C code reads on past a short record)
            self._insn_text = " ".join(f"{b:02x}" for b in insn)
        disasm = self._insn_text
        out.append(f"{vals['csbase']:x}:{vals['rip']:x}")
        self._rip_function(tev, data, vals["rip"], out)
        out.append(f": {disasm}{' FAIL' if vals['failed'] else ''}")
        return "".join(out), False

    def kvm_nested_vmexit_inject(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        if not self._nested_inject(tev, data, out):
            return "".join(out), True
        return "".join(out), False

    def _nested_inject(self, tev: TEvent, data: bytes, out: list[str]) -> bool:
        if not self._exit_reason(tev, data, "exit_code", out):
            return False
        self._num_field(out, " info1 %llx", tev, "exit_info1", data, True)
        self._num_field(out, " info2 %llx", tev, "exit_info2", data, True)
        self._num_field(out, " int_info %llx", tev, "exit_int_info", data, True)
        self._num_field(out, " int_info_err %llx", tev, "exit_int_info_err", data, True)
        return True

    def kvm_nested_vmexit(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        rip = self._val_err(tev, "rip", data, out)
        if rip is None:
            return "".join(out), True
        out.append(f" rip {rip:x}")
        self._rip_function(tev, data, rip, out)
        ok = self._nested_inject(tev, data, out)
        return "".join(out), not ok

    def kvm_mmu_role(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        ok = self._mmu_role(tev, data, out)
        return "".join(out), not ok

    def _mmu_role(self, tev: TEvent, data: bytes, out: list[str]) -> bool:
        val = self._val_err(tev, "role", data, out)
        if val is None:
            return False
        w = val & 0xFFFFFFFF
        if self.ev.big:
            out.append(f"WORD: {w:08x}")
        else:
            access = ["---", "--x", "w--", "w-x", "-u-", "-ux", "wu-", "wux"][(w >> 8) & 7]
            out.append(
                f"{w & 15} q{(w >> 5) & 3}{' direct' if (w >> 7) & 1 else ''} {access}"
                f"{' invalid' if (w >> 11) & 1 else ''} {'' if (w >> 4) & 1 else '!'}pae "
                f"{'' if (w >> 12) & 1 else '!'}nxe {'' if (w >> 13) & 1 else '!'}wp"
                f"{' smep' if (w >> 14) & 1 else ''}{' smap' if (w >> 15) & 1 else ''}"
                f"{' smm' if (w >> 24) & 0xFF else ''}")
        self._num_field(out, " root %u ", tev, "root_count", data, True)
        v = self._val_err(tev, "unsync", data, out)
        if v is None:
            return False
        out.append(("unsync" if v else "sync") + "\0")
        return True

    def kvm_mmu_get_page(self, tev: TEvent, data: bytes, cpu: int) -> tuple[str, bool]:
        out: list[str] = []
        v = self._val_err(tev, "created", data, out)
        if v is None:
            return "".join(out), True
        out.append("new " if v else "existing ")
        v = self._val_err(tev, "gfn", data, out)
        if v is None:
            return "".join(out), True
        out.append(f"sp gfn {v:x} ")
        ok = self._mmu_role(tev, data, out)
        return "".join(out), not ok


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


def _write_state(val: int) -> str:
    states = "SDTtZXxW"
    v = val & 0xFFFFFFFF
    out = [states[i] for i in range(8) if v & (1 << i)]
    return "|".join(out) if out else "R"


VMX_EXIT_REASONS = {
    0: "EXCEPTION_NMI", 1: "EXTERNAL_INTERRUPT", 2: "TRIPLE_FAULT", 7: "PENDING_INTERRUPT", 8: "NMI_WINDOW",
    9: "TASK_SWITCH", 10: "CPUID", 12: "HLT", 13: "INVD", 14: "INVLPG", 15: "RDPMC", 16: "RDTSC",
    18: "VMCALL", 19: "VMCLEAR", 20: "VMLAUNCH", 21: "VMPTRLD", 22: "VMPTRST", 23: "VMREAD",
    24: "VMRESUME", 25: "VMWRITE", 26: "VMOFF", 27: "VMON", 28: "CR_ACCESS", 29: "DR_ACCESS",
    30: "IO_INSTRUCTION", 31: "MSR_READ", 32: "MSR_WRITE", 36: "MWAIT_INSTRUCTION",
    39: "MONITOR_INSTRUCTION", 40: "PAUSE_INSTRUCTION", 41: "MCE_DURING_VMENTRY",
    43: "TPR_BELOW_THRESHOLD", 44: "APIC_ACCESS", 45: "EOI_INDUCED", 48: "EPT_VIOLATION",
    49: "EPT_MISCONFIG", 50: "INVEPT", 52: "PREEMPTION_TIMER", 54: "WBINVD", 55: "XSETBV",
    56: "APIC_WRITE", 58: "INVPCID", 62: "PML_FULL", 63: "XSAVES", 64: "XRSTORS",
}

SVM_EXIT_REASONS = {
    0x000: "EXIT_READ_CR0", 0x003: "EXIT_READ_CR3", 0x004: "EXIT_READ_CR4", 0x008: "EXIT_READ_CR8",
    0x010: "EXIT_WRITE_CR0", 0x013: "EXIT_WRITE_CR3", 0x014: "EXIT_WRITE_CR4", 0x018: "EXIT_WRITE_CR8",
    0x020: "EXIT_READ_DR0", 0x021: "EXIT_READ_DR1", 0x022: "EXIT_READ_DR2", 0x023: "EXIT_READ_DR3",
    0x024: "EXIT_READ_DR4", 0x025: "EXIT_READ_DR5", 0x026: "EXIT_READ_DR6", 0x027: "EXIT_READ_DR7",
    0x030: "EXIT_WRITE_DR0", 0x031: "EXIT_WRITE_DR1", 0x032: "EXIT_WRITE_DR2", 0x033: "EXIT_WRITE_DR3",
    0x034: "EXIT_WRITE_DR4", 0x035: "EXIT_WRITE_DR5", 0x036: "EXIT_WRITE_DR6", 0x037: "EXIT_WRITE_DR7",
    0x040: "EXIT_EXCP_DE", 0x041: "EXIT_EXCP_DB", 0x043: "EXIT_EXCP_BP", 0x044: "EXIT_EXCP_OF",
    0x045: "EXIT_EXCP_BR", 0x046: "EXIT_EXCP_UD", 0x047: "EXIT_EXCP_NM", 0x048: "EXIT_EXCP_DF",
    0x04A: "EXIT_EXCP_TS", 0x04B: "EXIT_EXCP_NP", 0x04C: "EXIT_EXCP_SS", 0x04D: "EXIT_EXCP_GP",
    0x04E: "EXIT_EXCP_PF", 0x050: "EXIT_EXCP_MF", 0x051: "EXIT_EXCP_AC", 0x052: "EXIT_EXCP_MC",
    0x053: "EXIT_EXCP_XF", 0x060: "EXIT_INTR", 0x061: "EXIT_NMI", 0x062: "EXIT_SMI", 0x063: "EXIT_INIT",
    0x064: "EXIT_VINTR", 0x065: "EXIT_CR0_SEL_WRITE", 0x066: "EXIT_IDTR_READ", 0x067: "EXIT_GDTR_READ",
    0x068: "EXIT_LDTR_READ", 0x069: "EXIT_TR_READ", 0x06A: "EXIT_IDTR_WRITE", 0x06B: "EXIT_GDTR_WRITE",
    0x06C: "EXIT_LDTR_WRITE", 0x06D: "EXIT_TR_WRITE", 0x06E: "EXIT_RDTSC", 0x06F: "EXIT_RDPMC",
    0x070: "EXIT_PUSHF", 0x071: "EXIT_POPF", 0x072: "EXIT_CPUID", 0x073: "EXIT_RSM", 0x074: "EXIT_IRET",
    0x075: "EXIT_SWINT", 0x076: "EXIT_INVD", 0x077: "EXIT_PAUSE", 0x078: "EXIT_HLT", 0x079: "EXIT_INVLPG",
    0x07A: "EXIT_INVLPGA", 0x07B: "EXIT_IOIO", 0x07C: "EXIT_MSR", 0x07D: "EXIT_TASK_SWITCH",
    0x07E: "EXIT_FERR_FREEZE", 0x07F: "EXIT_SHUTDOWN", 0x080: "EXIT_VMRUN", 0x081: "EXIT_VMMCALL",
    0x082: "EXIT_VMLOAD", 0x083: "EXIT_VMSAVE", 0x084: "EXIT_STGI", 0x085: "EXIT_CLGI",
    0x086: "EXIT_SKINIT", 0x087: "EXIT_RDTSCP", 0x088: "EXIT_ICEBP", 0x089: "EXIT_WBINVD",
    0x08A: "EXIT_MONITOR", 0x08B: "EXIT_MWAIT", 0x08C: "EXIT_MWAIT_COND", 0x08D: "EXIT_XSETBV",
    0x400: "EXIT_NPF", 0x401: "EXIT_AVIC_INCOMPLETE_IPI", 0x402: "EXIT_AVIC_UNACCELERATED_ACCESS",
    -1: "EXIT_ERR",
}

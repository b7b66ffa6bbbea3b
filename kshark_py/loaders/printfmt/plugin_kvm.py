"""plugin_kvm (libtraceevent 1.7.1 ``plugins/plugin_kvm.c``): kvm_exit, kvm_entry, kvm_emulate_insn,
the nested VM exits and the kvmmmu page events, as a mixin of :class:`~.plugins.PluginSet` (it
uses the set's field readers ``_val``, ``_val_err``, ``_num_field``, ``_num`` and its renderer).

In a merged host+guest report trace-cmd resolves the guest RIP with the guest's symbols
(``tep_plugin_kvm_get_func``); the renderer context's ``guest_func`` does that here.  Without a
disassembler (Debian builds the plugin without udis86) an instruction prints as its bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cnum import U64, s32

if TYPE_CHECKING:
    from .event import TEvent



class KvmPlugin:
    """The kvm handlers (mixed into PluginSet)."""

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

    # -- kvm plugin -------------------------------------------------------------------------------
    def _exit_reason(self, tev: TEvent, data: bytes, name: str, out: list[str]) -> bool:
        val = self._val_err(tev, name, data, out)
        if val is None:
            return False
        isa = self._val(tev, "isa", data)
        out.append(f"reason {exit_reason_name(val, 1 if isa is None else isa)}")
        return True

    def _rip_function(self, tev: TEvent, data: bytes, rip: int, out: list[str]) -> None:
        gf = self.r.ctx.guest_func
        if gf is None:
            return
        pid_f = tev.find_any_field("common_pid")
        pid = s32(self.ev.read(data, pid_f.offset, pid_f.size)) if pid_f else 0
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


def exit_reason_name(val: int, isa: int = 1) -> str:
    """What trace-cmd prints after ``reason `` for a ``kvm_exit`` (``HLT``, ``EXIT_NPF``, ``UNKNOWN (99)``...).

    ``isa`` picks the table (1: VMX, 2: SVM; 1 when the event has no ``isa`` field, as the plugin reads
    it); the reason is looked up as a signed 32-bit number, and printed raw when the table lacks it.
    """
    table = {1: VMX_EXIT_REASONS, 2: SVM_EXIT_REASONS}.get(isa & 0xFFFFFFFF)
    if table is None:
        return "UNKNOWN-ISA"
    reason = table.get(s32(val))
    return reason if reason is not None else f"UNKNOWN ({val})"


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

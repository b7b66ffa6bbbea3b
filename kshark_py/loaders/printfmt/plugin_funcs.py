"""Print-fmt helper functions that libtraceevent's plugins register (tep_register_print_function).

Some kernels' print fmts call functions by name: ``jbd2_run_stats`` calls ``jiffies_to_msecs``,
``scsi_dispatch_cmd_*`` call ``scsi_trace_parse_cdb``, cfg80211/mac80211 call ``__le16_to_cpup``,
xen's multicall events call ``xen_hypercall_name``, kvmmmu calls ``is_writable_pte``.  Without
the plugin such a print fmt fails to parse and trace-cmd prints ``[FAILED TO PARSE]``; with it,
the helper's text goes straight into the line (print_str_arg's TEP_PRINT_FUNC case writes to the
line itself and ignores the conversion's width), and its return value is the number a ``%d`` of
the call prints.

Each helper is ``fn(args, long_size) -> (text, value)``; ``args`` follow the FuncDef's params
(numbers unsigned, pointers as the record bytes they point at or None).  The ports follow
libtraceevent 1.7.1 ``plugins/plugin_{jbd2,kvm,cfg80211,xen,scsi}.c``, quirks included: the xen
names carry parentheses, an unknown hypercall prints nothing, and the SCSI parser ends its text
with a NUL (harmless: a ``%s`` argument is copied into the line with trace_seq_puts, which stops
there).  tests/test_plugins.py compares each with the real libtraceevent on random records.
"""

from __future__ import annotations

from ..cnum import U64, s32
from .tree import FuncDef

# -- kvm ------------------------------------------------------------------------------------------


def _is_writable_pte(args: list, long_size: int) -> tuple[str, int]:
    return "", args[0] & 2


# -- jbd2 -----------------------------------------------------------------------------------------


def _jbd2_dev_to_name(args: list, long_size: int) -> tuple[str, int]:
    dev = args[0] & 0xFFFFFFFF
    return f"{s32(dev >> 20)}:{s32(dev & 0xFFFFF)}", 0


def _jiffies_to_msecs(args: list, long_size: int) -> tuple[str, int]:
    v = args[0] & U64
    return str(v - (1 << 64) if v >> 63 else v), v


# -- cfg80211 -------------------------------------------------------------------------------------


def _le16_to_cpup(args: list, long_size: int) -> tuple[str, int]:
    """Reads a little-endian u16 where the pointer points (the first two bytes of a frame)."""
    b = args[0]
    if b is None:
        return "", 0
    b = bytes(b[:2]).ljust(2, b"\0")
    return "", b[0] | (b[1] << 8)


# -- xen ------------------------------------------------------------------------------------------

_XEN_NAMES = [
    "set_trap_table", "mmu_update", "set_gdt", "stack_switch", "set_callbacks", "fpu_taskswitch",
    "sched_op_compat", "dom0_op", "set_debugreg", "get_debugreg", "update_descriptor", None, "memory_op",
    "multicall", "update_va_mapping", "set_timer_op", "event_channel_op_compat", "xen_version",
    "console_io", "physdev_op_compat", "grant_table_op", "vm_assist", "update_va_mapping_otherdomain",
    "iret", "vcpu_op", "set_segment_base", "mmuext_op", "acm_op", "nmi_op", "sched_op", "callback_op",
    "xenoprof_op", "event_channel_op", "physdev_op", "hvm_op",
]
XEN_HYPERCALLS: dict[int, str] = {i: f"({n})" for i, n in enumerate(_XEN_NAMES) if n}
"""op -> the text plugin_xen prints: its table's entries are ``"(" #x ")"``; 38 (tmem_op) has a
number but no entry, and everything without an entry prints as the empty string."""
XEN_HYPERCALLS.update({48 + i: f"(arch_{i})" for i in range(8)})


def _xen_hypercall_name(args: list, long_size: int) -> tuple[str, int]:
    return XEN_HYPERCALLS.get(args[0] & 0xFFFFFFFF, ""), 0


# -- scsi -----------------------------------------------------------------------------------------

def _be(cdb: bytes, first: int, n: int, sign_extend_top: bool = False) -> int:
    """Big-endian ``n`` bytes of ``cdb`` from ``first``.  The C code ORs ``cdb[i] << 24`` as an int
    into a 64-bit sector_t, so a top byte >= 0x80 sign-extends (``sign_extend_top``)."""
    v = 0
    for i in range(first, first + n):
        v = (v << 8) | cdb[i]
    if sign_extend_top and cdb[first] & 0x80:
        v |= U64 ^ 0xFFFFFFFF
    return v


def _lba64(cdb: bytes, first: int) -> int:
    """Eight big-endian bytes: the high four as u64 shifts, the low four as (sign-extending) ints."""
    return (_be(cdb, first, 4) << 32) | _be(cdb, first + 4, 4, True)


_SCSI_RW10 = {0x28, 0x2F, 0x2A, 0x41}  # READ_10 VERIFY WRITE_10 WRITE_SAME
_SCSI_RW16 = {0x88, 0x8F, 0x8A, 0x93}  # READ_16 VERIFY_16 WRITE_16 WRITE_SAME_16
_SCSI_RW32 = {0x09: "READ", 0x0A: "VERIFY", 0x0B: "WRITE", 0x0D: "WRITE_SAME"}


def scsi_cdb_text(cdb: bytes) -> str:
    """What plugin_scsi's scsi_trace_parse_cdb prints for a command descriptor block (without its
    trailing NUL).  Reads past a short CDB see zeros (the C code reads on into the record)."""
    c = bytes(cdb[:32]).ljust(32, b"\0")
    op = c[0]
    if op in (0x08, 0x0A):  # READ_6 WRITE_6
        return f"lba={((c[1] & 0x1F) << 16) | (c[2] << 8) | c[3]} txlen={c[4]}"
    if op in _SCSI_RW10:
        s = f"lba={_be(c, 2, 4, True)} txlen={_be(c, 7, 2)} protect={c[1] >> 5}"
        return s + (f" unmap={(c[1] >> 3) & 1}" if op == 0x41 else "")
    if op in (0xA8, 0xAF, 0xAA):  # READ_12 VERIFY_12 WRITE_12
        return f"lba={_be(c, 2, 4, True)} txlen={_be(c, 6, 4, True)} protect={c[1] >> 5}"
    if op in _SCSI_RW16:
        s = f"lba={_lba64(c, 2)} txlen={_be(c, 10, 4, True)} protect={c[1] >> 5}"
        return s + (f" unmap={(c[1] >> 3) & 1}" if op == 0x93 else "")
    if op == 0x42:  # UNMAP
        return f"regions={((_be(c, 7, 2) - 8) & 0xFFFFFFFF) // 16}"
    if op == 0x9E:  # SERVICE_ACTION_IN_16
        cmd = {0x10: "READ_CAPACITY_16", 0x12: "GET_LBA_STATUS"}.get(c[1] & 0x1F)
        if cmd is None:
            return "UNKNOWN"
        return f"{cmd} lba={_lba64(c, 2)} alloc_len={_be(c, 10, 4)}"
    if op == 0x7F:  # VARIABLE_LENGTH_CMD
        sa = (c[8] << 8) | c[9]
        cmd = _SCSI_RW32.get(sa)
        if cmd is None:
            return "-"
        s = (f"{cmd}_32 lba={_lba64(c, 12)} txlen={_be(c, 28, 4, True)} protect={c[10] >> 5}"
             f" ei_lbrt={_be(c, 20, 4)}")
        return s + (f" unmap={(c[10] >> 3) & 1}" if sa == 0x0D else "")
    return "-"


def _scsi_trace_parse_cdb(args: list, long_size: int) -> tuple[str, int]:
    cdb = args[1]
    if cdb is None:
        return "", 0
    return scsi_cdb_text(cdb) + "\0", 0


def print_functions() -> dict[str, FuncDef]:
    """The helper functions the installed plugins register (by name)."""
    return {
        "is_writable_pte": FuncDef("is_writable_pte", ["long"], _is_writable_pte),
        "jbd2_dev_to_name": FuncDef("jbd2_dev_to_name", ["int"], _jbd2_dev_to_name),
        "jiffies_to_msecs": FuncDef("jiffies_to_msecs", ["long"], _jiffies_to_msecs),
        "__le16_to_cpup": FuncDef("__le16_to_cpup", ["ptr"], _le16_to_cpup),
        "xen_hypercall_name": FuncDef("xen_hypercall_name", ["int"], _xen_hypercall_name),
        "scsi_trace_parse_cdb": FuncDef("scsi_trace_parse_cdb", ["ptr", "ptr", "int"], _scsi_trace_parse_cdb),
    }

"""The ``record`` and ``agent`` commands' parsers, help texts and option lists, without the recorder.

Why a module of its own: every ``kshark-py`` command builds the whole parser (``-h`` lists all
commands, and :func:`kshark_py.cli.arrange` needs every option that takes a value), and
:mod:`.cli` imports the recorder, the agent, the file writer and through it the reader (0.1 s, with
numpy).  This module imports only argparse; :mod:`kshark_py.cli` imports :mod:`.cli` when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..argtypes import arg_type, whole_number

RECORD_HELP = """\
usage: kshark-py record [HOST OPTIONS] [-A GUEST [GUEST OPTIONS]]... [COMMAND [ARGS...]]
       kshark-py record --recover DIR [-o FILE] [--file-version 6|7] [--compression ...]

Records this kernel's events (and each guest agent's) into FILE (default trace.dat) and
trace-NAME.dat per guest. Without COMMAND or -d it records until Ctrl-C. Needs root.
Options after -A apply to that guest, until the next -A.

host options (before the first -A):
  -o FILE               output file (default trace.dat)
  -e EVENT              SYSTEM, SYSTEM:EVENT, EVENT or all (repeatable)
  -f FILTER             tracefs filter for the -e before it
  -b KB                 per-CPU ring buffer size in KB (1..2147483647)
  -C CLOCK              trace clock (local, global, x86-tsc, ...: /sys/kernel/tracing/trace_clock)
  --nofifos             connect to every guest over vsock/TCP even where FIFOs exist
any position:
  -d SECONDS            stop after SECONDS (a COMMAND still running then is terminated)
  --file-version 6|7    trace.dat version (default 7; guests need 7)
  --compression zstd|zlib|none   (default zstd)
  --tsync-interval MS   guest time-sync period (default 0: at start and stop; negative: none)
  --recover DIR         write the raw pages a recording kept in DIR (its output disk was full, it was
                        killed, its write was interrupted) into FILE (default: the file it was meant for);
                        DIR may be a guest's kshark-guest-NAME-* folder: its trace-NAME.dat is finished
  -h, --help            this text
a guest:
  -A NAME@CID[:PORT]    a vsock agent (port 823 by default)
  -A NAME@HOST:PORT     a TCP agent (kshark-py agent -N, trace-cmd agent -N)
  -e EVENT [-f FILTER]  the guest's events (at least one)
  -b KB                 the guest's buffer size
  --name NAME           the guest's name (its file: trace-NAME.dat)
  --nofifos             this guest over vsock/TCP even where FIFOs exist
  --guest-pid PID       the host process running the guest (QEMU's pid; vsock guests are found by
                        their CID): maps each VCPU to its thread (GUEST option) and, with -C x86-tsc,
                        offers KVM time sync (TSC offsets from /sys/kernel/debug/kvm/PID-*/)

Which events, as trace-cmd 3.1.6 record:
  -e before the first -A      the host's events (-e all: every event)
  -e after -A NAME            that guest's events; a guest needs at least one (trace-cmd's agent
                              aborts a request without -e)
  no -e before -A             the host is not traced at all and FILE is not written: only the
                              guests' trace-NAME.dat files
  no -e at all, no -A         error: nothing to record
  -e X -A g -e Y              host records X into FILE, guest g records Y into trace-g.dat

Raw pages go to a folder in the temp dir (TMPDIR) and stay there until FILE has been written and read
back complete; if that fails, the message names the folder and --recover finishes the job.  A guest's
data is received into kshark-guest-NAME-* beside FILE; if its trace-NAME.dat cannot be completed (a
full disk), that folder is kept and named the same way.  Instances
and such folders left by killed kshark-py processes are removed (instances) or listed (folders) at start.
On Ctrl-C or SIGTERM a COMMAND gets the same signal; the trace so far is written.

exit status: 0 complete; 2 error (FILE not written: the message says where the recording is kept);
3 FILE written but events were lost (the summary says which CPUs, how many and why); otherwise the
COMMAND's non-zero status.
"""

RECORD_VALUE_OPTIONS = frozenset({"-o", "-e", "-f", "-b", "-C", "--file-version", "--compression", "-d",
                                  "--tsync-interval", "-A", "--name", "--guest-pid", "--recover"})
"""``record``'s options that take a value (kshark_py.cli also needs them to find the command word)."""

RECORD_SUMMARY = "record the host and guest agents (trace-cmd record)"
AGENT_SUMMARY = "the guest side of record (as trace-cmd agent)"


def register(subparsers: argparse._SubParsersAction, record: Callable[[argparse.Namespace], int],
             agent: Callable[[argparse.Namespace], int]) -> None:
    """Add ``record`` and ``agent`` to the kshark-py command (called from kshark_py.cli.build_parser);
    ``record``/``agent`` run them (the caller's wrappers that import :mod:`.cli` only then)."""
    r = subparsers.add_parser("record", help=RECORD_SUMMARY,
                              usage=RECORD_HELP, add_help=False, prefix_chars="\x01")
    r.add_argument("words", nargs=argparse.REMAINDER)
    r.set_defaults(func=record)
    a = subparsers.add_parser("agent", help=AGENT_SUMMARY,
                              description="Serves host sessions until Ctrl-C or SIGTERM, then exits with "
                                          "status 0 (2: cannot listen). One host session at a time: a "
                                          "connection while one runs is closed at once; one that sends no "
                                          "request within 5 s is closed.")
    a.add_argument("-p", type=arg_type(whole_number), metavar="PORT",
                   help="port (default 823, trace-cmd's; vsock 0..4294967295, 4294967295: any free port; "
                        "TCP 0..65535, 0: any)")
    a.add_argument("-N", metavar="HOST", help="listen on TCP and accept only HOST (IPv4/IPv6 address or name, "
                   "resolved at each connection); listens on the local address that reaches HOST (default: vsock)")
    a.add_argument("--listen", metavar="ADDR", help="with -N: listen on ADDR instead (:: or 0.0.0.0: everywhere)")
    a.add_argument("--allow-cid", metavar="CID", action="append", type=arg_type(whole_number, 0, 0xFFFFFFFE),
                   help="vsock: also accept this CID (repeatable; by default only the host, CID 2)")
    a.add_argument("--once", action="store_true", help="exit after one session")
    a.set_defaults(func=agent)

"""The kshark-py command line: every bad input is one line and exit 2, --cpu as trace-cmd 3.1.6 reads it,
files and options in any place, the app's options (run() is replaced: these tests are about the words)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kshark_py import cli, cliutil
from kshark_py.cli import cpus_in, main, parse_cpu_list

from .support.cli import assert_one_line_error

SMALL = "host-small-v7.dat"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_proc(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kshark_py.cli", *argv], capture_output=True, text=True,
                          timeout=timeout)


def trace_cmd_report(*args: str) -> str:
    r = subprocess.run(["trace-cmd", "report", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


# --- --cpu -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ranges"), [
    ("1", [(1, 1)]), (" 1", [(1, 1)]), ("01", [(1, 1)]), ("0,2-3", [(0, 0), (2, 3)]), ("3:0", [(3, 3), (0, 0)]),
    ("1 2", [(1, 1), (2, 2)]), ("1,", [(1, 1)]), ("1- 1", [(1, 1)]), ("0-1,1", [(0, 1), (1, 1)]),
    ("0-999999999999", [(0, 999999999999)]),
])
def test_cpu_list_syntax_as_trace_cmd(text, ranges):
    """What trace-cmd 3.1.6 report --cpu accepts (its parse_cpulist(), tried on the binary)."""
    assert parse_cpu_list(text) == ranges


@pytest.mark.parametrize(("text", "what"), [
    ("1-x", "'x'"), ("a", "'a'"), ("1-", "missing"), ("-1", "'-'"), ("0x1", "'x'"), ("5-2", "5-2"), ("", "missing"),
    ("1 ", "missing"), (",", "','"), ("1,,2", "','"), ("1 ,2", "','"), ("+1", "'+'"), ("1.5", "'.'"),
    ("0-1-2", "'-'"), ("٣", "'٣'"),
])
def test_cpu_list_errors_are_one_line(capsys, traces, text, what):
    """trace-cmd refuses each of these with one line; we did with a traceback (exit 1)."""
    code, out, err = run(capsys, "report", "-i", str(traces / SMALL), "--cpu", text)
    assert_one_line_error(code, err, "--cpu", what)
    assert out == ""


def test_cpu_error_from_the_installed_command(traces):
    """The console script as users run it: no traceback, status 2."""
    r = run_proc("report", "--cpu", "1-x", "-i", str(traces / SMALL))
    assert_one_line_error(r.returncode, r.stderr, "'1-x'")


def test_huge_cpu_ranges_are_clipped_not_built():
    """0-999999999999 was a MemoryError and 0-100000000 5.6 GB: ranges are clipped to the input's CPUs."""
    assert cpus_in(parse_cpu_list("0-999999999999"), 4) == [0, 1, 2, 3]
    assert cpus_in(parse_cpu_list("2-" + "9" * 5000), 4) == [2, 3]  # past int()'s 4300-digit limit
    assert cpus_in(parse_cpu_list("7,9"), 4) == []
    assert cpus_in(parse_cpu_list("3,1,1-2"), 8) == [1, 2, 3]


def test_huge_cpu_range_prints_everything(capsys, traces):
    f = str(traces / SMALL)
    code, all_cpus, err = run(capsys, "report", "-i", f)
    assert code == 0
    for spec in ("0-999999999999", "0-" + "9" * 30, "0-100000000"):
        code, out, err = run(capsys, "report", "-i", f, "--cpu", spec)
        assert code == 0 and err == "" and out == all_cpus


@pytest.mark.parametrize(("files", "specs"), [
    ([SMALL], ["1", "0 --cpu 1", "3:0", "1 2", "5", "0-100000000"]),
    # an instance's CPUs follow the top buffer's: 2 and 3 are irqbuf's CPUs 0 and 1
    (["host-instances.dat"], ["2", "1-2", "0,3", "4"]),
    # host 2 CPUs + guest 1: 2 is the guest's CPU 0, and "0" drops the guest
    (["vm-tsync/trace.dat", "vm-tsync/trace-vmguest.dat"], ["2", "1"]),
])
def test_cpu_selection_as_trace_cmd(capsys, traces, files, specs):
    """The output is trace-cmd's, line for line, with its meaning of the numbers across files/instances."""
    ins = [a for f in files for a in ("-i", str(traces / f))]
    for spec in specs:
        cpu_args = [a for part in spec.split(" --cpu ") for a in ("--cpu", part)]
        code, out, err = run(capsys, "report", *ins, *cpu_args)
        assert code == 0, err
        assert out == trace_cmd_report(*ins, *cpu_args), spec


def test_cpu_beyond_the_input_warns(capsys, traces):
    code, out, err = run(capsys, "report", "-i", str(traces / SMALL), "--cpu", "7")
    assert code == 0 and out == "cpus=2\n"  # what trace-cmd prints
    assert "none of the input's CPUs 0-1" in err


# --- files and options in any place ---------------------------------------------------------------


def test_options_before_the_command_apply_to_it(capsys, traces):
    f = str(traces / SMALL)
    code, ref, _ = run(capsys, "report", "-i", f, "-t")
    assert code == 0 and ref.startswith("cpus=2\n")
    for argv in (["-i", f, "report", "-t"], ["-t", "-i", f, "report"], ["report", f, "-t"], [f, "report", "-t"],
                 ["-t", "report", "--", f]):
        code, out, err = run(capsys, *argv)
        assert code == 0 and out == ref, (argv, err)


def test_option_values_are_not_commands(capsys, traces, tmp_path, monkeypatch):
    """A file named like a command after -i stays a file."""
    (tmp_path / "report").write_bytes((traces / SMALL).read_bytes())
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "vcpus", "-i", "report")
    assert code == 0, err
    code, out, err = run(capsys, "report", "-i", "report", "--cpu", "1")
    assert code == 0 and out.startswith("cpus=2\n")


def test_an_option_of_another_command_is_refused(capsys, traces):
    code, out, err = run(capsys, "--screenshot", "x.png", "report", "-i", str(traces / SMALL))
    assert_one_line_error(code, err, "--screenshot", "kshark-py report -h")


@pytest.fixture
def fake_app(monkeypatch):
    """Replace the app's run(): these tests look at what the command line hands it."""
    import kshark_py.ui.app as app

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(app, "run", lambda *a, **kw: calls.append((a, kw)) or 0)
    return calls


def test_app_takes_bare_files_in_order(capsys, traces, fake_app):
    h, g = str(traces / "vm-tsync/trace.dat"), str(traces / "vm-tsync/trace-vmguest.dat")
    for argv in ([h, g], ["-i", h, g], [h, "-i", g], ["--", h, g]):
        code, _, err = run(capsys, *argv)
        assert code == 0, err
    assert [c[0][0] for c in fake_app] == [[h, g]] * 4


def test_app_vcpu_threads_and_time_offsets(capsys, traces, fake_app):
    """--vcpu-threads gives the app the map `vcpus` builds; --time-offset a {stream: ns} dict."""
    d = traces / "vm-2guests"
    files = [str(d / "trace.dat"), str(d / "trace-vmguestA.dat"), str(d / "trace-vmguestB.dat")]
    threads = [f"vmguestA={d / 'vcpu-threads-vmguestA.json'}", f"vmguestB={d / 'vcpu-threads-vmguestB.json'}"]
    code, _, err = run(capsys, *files, *(a for t in threads for a in ("--vcpu-threads", t)),
                       "--vcpu-map", "vmguestB:1=77", "--time-offset", "vmguestA=-2600000000000",
                       "--time-offset", "2=15", "--time-offset", "vmguestA=5")
    assert code == 0, err
    (paths, session, user_map, shot), kw = fake_app[-1]
    assert paths == files and session is None and shot is None
    assert user_map == {"vmguestA": {0: 9444}, "vmguestB": {0: 9446, 1: 77}}
    assert user_map == cliutil.user_vcpu_map(["vmguestB:1=77"], threads)  # the one function `vcpus` uses
    assert kw == {"time_offsets": {"vmguestA": 5, 2: 15}}
    # and `vcpus` reports the threads from the same files
    code, out, err = run(capsys, "vcpus", *files, "--vcpu-threads", threads[0])
    assert code == 0, err
    assert out.splitlines()[1].split()[:5] == ["vmguestA", "0", "9444", "qemu-system-x86", "user"]


@pytest.mark.parametrize(("argv", "words"), [
    (["--time-offset", "guest"], ["STREAM=NS"]),
    (["--time-offset", "guest=1.5"], ["'1.5'"]),
    (["--time-offset", "=5"], ["STREAM=NS"]),
    (["--vcpu-threads", "guestonly"], ["GUEST=FILE.json"]),
    (["--vcpu-threads", "g=/nonexistent.json"], ["/nonexistent.json"]),
    (["--vcpu-map", "nonsense"], ["nonsense"]),
    (["-i", "/nonexistent.dat"], ["/nonexistent.dat", "No such file"]),
    (["/"], ["/", "Is a directory"]),
    (["{traces}/" + SMALL, "--time-offset", "guest=5"], ["--time-offset", "no stream 'guest'", "0=host"]),
    (["{traces}/" + SMALL, "--time-offset", "1=5"], ["--time-offset", "no stream 1"]),
])
def test_app_bad_arguments_never_start_the_app(capsys, traces, fake_app, argv, words):
    code, _, err = run(capsys, *(a.format(traces=traces) for a in argv))
    assert_one_line_error(code, err, *words)
    assert fake_app == []


def test_only_user_input_errors_become_one_line(capsys, traces, fake_app, monkeypatch):
    """The CLI tells bad input from bugs by type: a model error about what the user gave (here a
    session file's, raised where a VCPU map is parsed) is one line and exit 2; any other ValueError
    is a bug and keeps its traceback."""
    import kshark_py.model.vcpus as vcpus
    from kshark_py.model.errors import SessionFileError

    def fail(exc: Exception):
        def parse(spec: str):
            raise exc
        return parse

    monkeypatch.setattr(vcpus, "parse_vcpu_map_arg", fail(SessionFileError("demo.json: not a session")))
    code, _, err = run(capsys, str(traces / SMALL), "--vcpu-map", "g:0=1")
    assert_one_line_error(code, err, "demo.json: not a session")
    monkeypatch.setattr(vcpus, "parse_vcpu_map_arg", fail(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        main([str(traces / SMALL), "--vcpu-map", "g:0=1"])
    assert fake_app == []


def test_vcpu_threads_error_status_is_2(traces):
    """It was SystemExit with a message: exit status 1."""
    r = run_proc("vcpus", "-i", str(traces / SMALL), "--vcpu-threads", "g")
    assert_one_line_error(r.returncode, r.stderr, "GUEST=FILE.json")


def test_fifo_and_directory_inputs(capsys, tmp_path):
    """A FIFO made open() wait forever; now every command refuses it at once."""
    fifo = tmp_path / "trace.dat"
    os.mkfifo(fifo)
    for argv in (["report", "-i", str(fifo)], ["export", str(fifo), "-o", str(tmp_path / "x.parquet")],
                 ["vcpus", "-i", str(fifo)], [str(fifo)]):
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "FIFO")
    code, _, err = run(capsys, "report", str(tmp_path))
    assert_one_line_error(code, err, "Is a directory")


def test_export_takes_one_file(capsys, traces, tmp_path):
    code, _, err = run(capsys, "export", str(traces / SMALL), str(traces / SMALL), "-o", str(tmp_path / "x.parquet"))
    assert_one_line_error(code, err, "one input file")
    code, _, err = run(capsys, "export", "-o", str(tmp_path / "x.parquet"))
    assert_one_line_error(code, err, "one input file")
    code, _, err = run(capsys, str(traces / SMALL), "export", "-o", str(tmp_path / "x.parquet"))
    assert code == 0 and "events" in err
    code, _, err = run(capsys, "vcpus")
    assert_one_line_error(code, err, "HOST.dat GUEST.dat")


@pytest.mark.parametrize(("argv", "why"), [
    ([SMALL, "--screenshot", "{missing}/x.png"], "is not a directory"),
    ([SMALL, "--screenshot", "{tmp}"], "is a directory"),
    (["export", SMALL, "-o", "{missing}/x.parquet"], "is not a directory"),
    (["record", "-o", "{missing}/x.dat", "-e", "sched", "-d", "1"], "is not a directory"),
    (["record", "-o", "{tmp}", "-e", "sched", "-d", "1"], "is a directory"),
])
def test_unwritable_outputs_are_refused_first(traces, tmp_path, argv, why):
    """--screenshot into a missing directory exited 2 saying nothing; record recorded, then failed on a temp name."""
    argv = [str(traces / a) if a == SMALL else a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in argv]
    r = run_proc(*argv)
    assert_one_line_error(r.returncode, r.stderr, why)
    assert list(tmp_path.iterdir()) == []


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "words"), [
    (["record", "-b", "abc", "-e", "sched"], ["-b", "'abc'"]),
    (["record", "-b", "0", "-e", "sched"], ["-b", "out of range"]),
    (["record", "-e", "sched", "-A", "g@127.0.0.1:1", "-e", "sched", "-b", "1k"], ["-b", "'1k'"]),
    (["record", "-d", "abc", "-e", "sched"], ["-d", "'abc'"]),
    (["record", "-d", "nan", "-e", "sched"], ["-d", "'nan'"]),
    (["record", "-d", "inf", "-e", "sched"], ["-d"]),
    (["record", "-d", "-1", "-e", "sched"], ["-d"]),
    (["record", "-d", "1e400", "-e", "sched"], ["-d", "out of range"]),
    (["record", "--tsync-interval", "x", "-e", "sched"], ["--tsync-interval", "'x'"]),
    (["record", "--file-version", "8", "-e", "sched"], ["--file-version"]),
    (["record", "-e", "sched", "-A", "g@127.0.0.1:1", "--guest-pid", "12a", "-e", "sched"], ["--guest-pid", "'12a'"]),
    (["record", "-e", "sched", "-A", "g@127.0.0.1:1", "--guest-pid", "٣", "-e", "sched"], ["--guest-pid"]),
    (["agent", "-p", "abc"], ["-p", "'abc'"]),
    (["agent", "-p", "99999999999999999999"], ["port"]),
    (["vcpus", "-i", "x.dat", "--tolerance-us", "x"], ["--tolerance-us", "'x'"]),
    (["vcpus", "-i", "x.dat", "--tolerance-us", "-5"], ["--tolerance-us", "out of range"]),
])
def test_numeric_options_one_line(argv, words):
    """record -b abc printed Python's int() message; -d nan ended in a traceback."""
    if argv[0] == "record" and "--file-version" not in argv:
        argv = [*argv, "--file-version", "9"]  # refused last: never records, even if the check under test broke
    r = run_proc(*argv, timeout=30)
    if "--file-version" not in words:
        assert "--file-version" not in r.stderr
    assert_one_line_error(r.returncode, r.stderr, *words)
    assert "invalid literal" not in r.stderr and "could not convert" not in r.stderr


def test_record_nofifos_before_a_guest_applies_to_every_guest():
    from kshark_py.capture.cli import parse_record_args

    a = parse_record_args(["--nofifos", "-A", "a@1.2.3.4:5", "-e", "sched", "-A", "b@3", "-e", "irq"])
    assert [g.use_fifos for g in a.guests] == [False, False]
    a = parse_record_args(["-A", "a@1.2.3.4:5", "-e", "sched", "--nofifos", "-A", "b@3", "-e", "irq"])
    assert [g.use_fifos for g in a.guests] == [False, True]


# --- help ------------------------------------------------------------------------------------------


def test_help_lists_every_command_on_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "--help")
    assert code == 0
    parser = cli.build_parser()
    commands = cli._value_options(parser)[1]
    assert commands == {"report", "vcpus", "export", "stats", "sql", "record", "agent", "cache"}
    lines = [*out.splitlines(), ""]
    for name in commands:
        at = [i for i, ln in enumerate(lines) if re.match(rf"    {name}  +\S", ln)]
        assert len(at) == 1, (name, out)  # the name and its description, on one line
        assert not lines[at[0] + 1].startswith(" " * 8), lines[at[0]:at[0] + 2]  # no continuation
    for opt in ("--vcpu-threads", "--time-offset", "--session", "--screenshot"):
        assert opt in out


def test_command_help_reaches_the_command(capsys):
    code, out, _ = run(capsys, "-h", "report")
    assert code == 0 and "--cpu LIST" in out
    r = run_proc("record", "-h")
    assert r.returncode == 0
    for opt in ("-o FILE", "-b KB", "-C CLOCK", "-d SECONDS", "--file-version", "--compression", "--tsync-interval",
                "--name NAME", "--nofifos", "--guest-pid PID", "-A NAME@HOST:PORT"):
        assert opt in r.stdout, opt


def test_agent_option_error_is_one_line_with_raw_pages_left_behind(tmp_path):
    """The agent lists raw pages a killed recording left in TMPDIR when it starts; a bad option is still
    one line: the options are checked first (a leftover of a failed test run broke the one-line rule)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    raw = tmp_path / f"kshark-rec-{gone.pid}-abcdefgh"
    raw.mkdir()
    (raw / "cpu0").write_bytes(bytes(8192))
    r = subprocess.run([sys.executable, "-m", "kshark_py.cli", "agent", "-p", "99999999999999999999"],
                       capture_output=True, text=True, timeout=30, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert_one_line_error(r.returncode, r.stderr, "port")
    assert str(raw) not in r.stderr

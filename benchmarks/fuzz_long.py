"""Long fuzz run: N cases of tests/fuzzcases.py in forked workers; cases per second and an outcome table.

    nice -n 19 .venv/bin/python benchmarks/fuzz_long.py 100000 [--jobs 2] [--seed S] [--keys v7,v6,...]
        [--crash-dir fuzz-crashes] [--kind chunk]

Cases are spread round-robin over the corpus files (tests/fuzzcases.CORPUS) and drawn from
``(key, seed, index)`` only, so any case is reproduced with ``--keys KEY --start INDEX 1``.  Every crash,
hang or memory blow-up writes its input files, the mutations, the traceback and a one-line reproduction
into the crash directory (at most ``--keep`` inputs per signature).  Progress goes to stderr every 30 s;
the final table to stdout (and ``--json`` to a file, also every 30 s).  ``kill -TERM`` (or -INT) stops
the run early and still prints the table of the cases done.  A corpus file that does not load cleanly
unmutated is left out and named (its bug is not the fuzzer's finding).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzcases  # noqa: E402


def baseline_ok(runner: fuzzcases.Runner, keys: list[str]) -> list[str]:
    """The keys whose unmutated files go through every path cleanly (checked in forked children)."""
    bad: dict[str, str] = {}

    def check(res: fuzzcases.Result) -> None:
        if res.outcome != "clean":
            bad[res.case.key] = f"{res.outcome} {res.sig} in {res.step}"

    runner.run(((key, 0, 0, "none") for key in keys), check)
    for key, why in bad.items():
        print(f"left out {key}: the unmutated file fails: {why}", file=sys.stderr)
    return [k for k in keys if k not in bad]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, help="number of cases")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=int(time.strftime("%Y%m%d")))
    ap.add_argument("--start", type=int, default=0, help="index of the first case (per key)")
    ap.add_argument("--keys", default=",".join(fuzzcases.CORPUS))
    ap.add_argument("--kind", default=None, choices=fuzzcases.KINDS)
    ap.add_argument("--crash-dir", default="fuzz-crashes")
    ap.add_argument("--keep", type=int, default=3, help="inputs kept per crash signature")
    ap.add_argument("--timeout", type=float, default=fuzzcases.CASE_SECONDS)
    ap.add_argument("--json", default=None, help="write the table here too")
    ap.add_argument("--depth", type=float, default=0.25,
                    help="chance scale of the paths after the reader (1 = as CI; less fits more cases)")
    a = ap.parse_args(argv)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # stop early and still print the table: SIGINT (ignored in a background job of a script) or SIGTERM
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    keys = [k for k in a.keys.split(",") if all(p.exists() for p in fuzzcases.CORPUS[k][0])]
    runner = fuzzcases.Runner(jobs=a.jobs, timeout=a.timeout, depth=a.depth)
    keys = baseline_ok(runner, keys)
    if not keys:
        print("no corpus file loads cleanly", file=sys.stderr)
        return 2
    crash_dir = Path(a.crash_dir)
    outcomes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    sigs: Counter[str] = Counter()
    first_of: dict[str, str] = {}
    t0 = time.monotonic()
    last = [t0]
    done = [0]

    def cases():
        for i in range(a.n):
            yield keys[i % len(keys)], a.seed, a.start + i // len(keys), a.kind

    step_secs: Counter[str] = Counter()

    slowest: list[tuple[float, str, str]] = []

    def on_result(res: fuzzcases.Result) -> None:
        done[0] += 1
        step_secs.update(res.times)
        if res.times:  # the slowest cases, by the child's own clock: pathological inputs short of a hang
            top = max(res.times, key=res.times.get)
            slowest.append((sum(res.times.values()), res.case.label(), f"{top} {res.times[top]:.1f} s"))
            slowest.sort(reverse=True)
            del slowest[5:]
        bucket = res.outcome.split(":")[0] if not res.bug else res.outcome
        outcomes[res.outcome] += 1
        by_kind.setdefault(res.case.kind, Counter())[bucket] += 1
        if res.bug or res.outcome == "fuzzer-error":  # a mutator's own exception: kept to be fixed too
            sigs[res.sig] += 1
            first_of.setdefault(res.sig, res.case.label())
            if sigs[res.sig] <= a.keep:
                save(crash_dir, res, a.depth)
        now = time.monotonic()
        if now - last[0] > 30:
            last[0] = now
            if a.json:
                Path(a.json).write_text(json.dumps({"cases": done[0], "seconds": now - t0, "outcomes": outcomes,
                                                    "signatures": sigs, "first": first_of}, indent=1))
            rate = done[0] / (now - t0)
            bugs = sum(v for k, v in outcomes.items() if k.startswith("crash") or k in ("hang", "blowup"))
            print(f"{done[0]}/{a.n} cases, {rate:.1f}/s, {bugs} bugs, eta {(a.n - done[0]) / rate / 60:.0f} min",
                  file=sys.stderr, flush=True)

    try:
        runner.run(cases(), on_result)
    except KeyboardInterrupt:  # kill -INT: stop early, keep the table of the cases done
        runner.stop()
        print(f"stopped after {done[0]} cases", file=sys.stderr)
    secs = time.monotonic() - t0
    table = summarize(outcomes, by_kind, sigs, first_of, done[0], secs, a, keys)
    print(table)
    print("\nmean seconds per case in each step: " + ", ".join(
        f"{k} {v / max(done[0], 1):.3f}" for k, v in step_secs.most_common()))
    print("slowest cases: " + "; ".join(f"{label} {secs:.1f} s ({top})" for secs, label, top in slowest))
    if a.json:
        Path(a.json).write_text(json.dumps({"cases": done[0], "seconds": secs, "outcomes": outcomes,
                                            "by_kind": by_kind, "signatures": sigs, "first": first_of}, indent=1))
    return 1 if sigs else 0


def save(crash_dir: Path, res: fuzzcases.Result, depth: float) -> None:
    """The case's input files, mutations, traceback and reproduction command."""
    d = crash_dir / f"{res.case.key}-{res.case.seed}-{res.case.index}"
    d.mkdir(parents=True, exist_ok=True)
    try:
        case, files = fuzzcases.make_case(res.case.key, res.case.seed, res.case.index, res.case.forced, depth)
    except Exception as e:  # noqa: BLE001 - a fuzzer error: keep the description
        (d / "traceback.txt").write_text(f"{res.tb}\nmake_case: {e!r}")
        return
    for i, data in enumerate(files):
        (d / f"input{i}.dat").write_bytes(data)
    (d / "case.json").write_text(json.dumps({
        "key": case.key, "seed": case.seed, "index": case.index, "kind": case.kind, "steps": case.steps,
        "params": case.params, "outcome": res.outcome, "signature": res.sig, "step": res.step,
        "reproduce": f"benchmarks/fuzz_long.py 1 --jobs 1 --keys {case.key} --seed {case.seed} --start {case.index}"
                     f" --depth {depth}"
                     + (f" --kind {case.forced}" if case.forced else ""),
    }, indent=1))
    (d / "traceback.txt").write_text(res.tb)


def summarize(outcomes, by_kind, sigs, first_of, n, secs, a, keys) -> str:
    lines = [f"{n} cases in {secs:.0f} s: {n / max(secs, 1e-9):.1f} cases/s with {a.jobs} workers "
             f"(seed {a.seed}, files {','.join(keys)})", "", "outcome                                   cases"]
    order = sorted(outcomes.items(), key=lambda kv: (not (kv[0].startswith("crash") or kv[0] in ("hang", "blowup")),
                                                      kv[0].split(":")[0], -kv[1]))
    for k, v in order:
        lines.append(f"  {k:<40}{v:>7}")
    for cls in ("crash", "hang", "blowup"):
        if not any(k.startswith(cls) for k in outcomes):
            lines.append(f"  {cls:<40}{0:>7}")
    lines.append("")
    lines.append("by mutator: " + "; ".join(f"{k}: " + ", ".join(f"{b} {v}" for b, v in sorted(c.items()))
                                            for k, c in sorted(by_kind.items())))
    if sigs:
        lines.append("")
        lines.append(f"bug signatures (inputs in {a.crash_dir}/):")
        for s, v in sigs.most_common():
            lines.append(f"  {v:>6}  {s}  (first: {first_of[s]})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

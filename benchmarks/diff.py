"""How fast `agentspec diff` reviews two 5,000-tool specs, one changed in 100 places.

    python benchmarks/diff.py            # 5 runs; prints medians and the bar
    python benchmarks/diff.py --runs 3

OLD is `gen_spec.generate(5000)` (about 50,000 lines, 500 workflows). NEW is OLD with 100 edits:
40 idempotency keys rewritten, 20 lookup timeouts changed, 10 compensations removed, 20 workflows
given one more outbound host, 10 latency SLOs loosened. The figures printed:

  load+check   parsing and checking both sides (the checker's own cost, benchmarks/check_scale.py)
  review       the review proper on the two checked models: model comparison, exact permission
               verdicts with counterexamples, classification, version finding
  render       the Markdown and SARIF reports

Bar: the review of the two checked specs, plus rendering, takes under 2 s (median). The exit status
is 1 when it does not, or when the review does not find exactly the changes made.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_spec import generate

from agentspec.gcpause import paused
from agentspec.review import review
from agentspec.review.render import markdown, to_sarif
from agentspec.review.sources import side_from_text

N_TOOLS = 5000
BAR_S = 2.0


def _edit(text: str, header: str, old: str, new: str) -> str:
    """Replace the first `old` after the declaration `header`."""
    at = text.index(header)
    hit = text.index(old, at)
    return text[:hit] + new + text[hit + len(old) :]


def changed(text: str) -> tuple[str, Counter[str]]:
    """NEW and the change codes it must produce (besides the R0001 verdicts and the R0003 finding)."""
    expect: Counter[str] = Counter()
    for g in range(0, 400, 10):  # 40
        text = _edit(text, f"  tool g{g}_update_6 {{", ':6"', ':6:v2"')
        expect["R0109"] += 1
    for g in range(5, 205, 10):  # 20
        text = _edit(text, f"  tool g{g}_lookup_0 {{", "read_only\n", "read_only\n    timeout 4s\n")
        expect["R0118"] += 1
    for g in range(7, 107, 10):  # 10
        text = _edit(text, f"  tool g{g}_act {{", f"\n    compensate g{g}_undo", "")
        expect["R0110"] += 1
    for g in range(3, 403, 20):  # 20
        text = _edit(
            text,
            f"  workflow ops_{g} class",
            f'outbound allow ["svc{g}.example.com"]',
            f'outbound allow ["svc{g}.example.com", "audit{g}.example.com"]',
        )
        expect["R0205"] += 1
    for g in range(11, 111, 10):  # 10
        text = _edit(text, f"  workflow ops_{g} class", "latency p95 < 30m", "latency p95 < 45m")
        expect["R0701"] += 1
    return text, expect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    old_text = generate(N_TOOLS)
    new_text, expect = changed(old_text)
    print(f"OLD {N_TOOLS} tools, {old_text.count(chr(10))} lines; NEW with {sum(expect.values())} edits")
    checks, reviews, renders = [], [], []
    result = None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        with paused():
            old, new = side_from_text(old_text, "old.agent"), side_from_text(new_text, "new.agent")
        t1 = time.perf_counter()
        with paused():
            result = review(old, new)
        t2 = time.perf_counter()
        markdown([result]), to_sarif([result])
        t3 = time.perf_counter()
        checks.append(t1 - t0)
        reviews.append(t2 - t1)
        renders.append(t3 - t2)
    assert result is not None
    found = Counter(c.code for c in result.changes)
    verdicts = found.pop("R0001", 0)
    bump = found.pop("R0003", 0)
    # Each workflow given a host lets each of its 10 tools call there: one R0001 per (workflow, tool).
    ok_changes = found == expect and verdicts == 10 * expect["R0205"] and bump == 1
    runs = {"load+check": checks, "review": reviews, "render": renders}
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(f"  {k:<11} median {med[k] * 1000:8.1f} ms  (min {min(v) * 1000:.1f} ms)")
    fields = dict(sorted(found.items()))
    print(f"  changes     {sum(found.values())} field changes {fields}, {verdicts} R0001, {bump} R0003")
    total = med["review"] + med["render"]
    bar = total < BAR_S
    print(f"  review+render median {total:.3f} s < {BAR_S} s: {'PASS' if bar else 'FAIL'}")
    print(f"  end to end (with load+check) median {total + med['load+check']:.3f} s")
    print(f"  found exactly the changes made: {'PASS' if ok_changes else 'FAIL'}")
    return 0 if bar and ok_changes else 1


if __name__ == "__main__":
    sys.exit(main())

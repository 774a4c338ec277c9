""" "Checks implies builds" at length: N generated specs through check, compile, `tsc` and `wrangler --dry-run`.

    python benchmarks/checks_build.py            # 20 examples
    python benchmarks/checks_build.py -n 100     # more

The suite runs two examples (tests/test_checks_build.py); this runs as many as asked, with a fixed
seed, and prints how many specs the checker accepted, how many of those built, the median time
of each stage, and the first failure in full. Exits 1 if any accepted spec failed to build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.checks_build import Built, build
from tests.valid_specs import valid_specs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20, help="examples to draw")
    n = parser.parse_args().n
    results: list[tuple[str, Built]] = []

    @seed(20261201)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(valid_specs())
    def run(text: str) -> None:
        results.append((text, build(text)))

    run()
    accepted = [(t, b) for t, b in results if b.checked]
    failed = [(t, b) for t, b in accepted if b.failures]
    print(f"drawn {len(results)}, checked clean {len(accepted)}, built {len(accepted) - len(failed)}")
    for stage in ("compile", "tsc", "wrangler"):
        times = [b.seconds[stage] for _, b in accepted if stage in b.seconds]
        if times:
            print(f"  {stage:8} median {statistics.median(times):.2f} s over {len(times)}")
    if failed:
        text, built = failed[0]
        print(f"FAIL: {len(failed)} accepted spec(s) did not build; the first:\n{text}\n{built.failures[0]}")
        return 1
    print("PASS: every spec the checker accepted built")
    return 0


if __name__ == "__main__":
    sys.exit(main())

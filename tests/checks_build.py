""" "Checks implies builds", as a function: a spec text in, what each stage of the toolchain said out.

Shared by the bounded property test (tests/test_checks_build.py) and the longer run in
benchmarks/checks_build.py: check the spec; if the checker accepts it, compile it, type-check
the project with `tsc --noEmit` and bundle it with `wrangler deploy --dry-run` (offline).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentspec.check import check
from agentspec.emit import emit, write
from agentspec.load import load_text
from tests.test_generated import BIN, NODE_MODULES, run


@dataclass
class Built:
    checked: bool
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def build(text: str) -> Built:
    result = check(load_text(text, "generated.agent"))
    if not result.ok or result.spec is None:
        return Built(checked=False)
    out = Built(checked=True)
    with tempfile.TemporaryDirectory(prefix="agentspec-build-") as tmp:
        project = Path(tmp) / "project"
        started = time.perf_counter()
        write(emit(result.spec), str(project))
        out.seconds["compile"] = time.perf_counter() - started
        (project / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
        for stage, argv in (
            ("tsc", [str(BIN / "tsc"), "--noEmit", "-p", "tsconfig.json"]),
            ("wrangler", [str(BIN / "wrangler"), "deploy", "--dry-run", "--outdir", "dist", "--env", "production"]),
        ):
            started = time.perf_counter()
            done = run(argv, project)
            out.seconds[stage] = time.perf_counter() - started
            output = done.stdout + done.stderr
            if done.returncode != 0 or "error TS" in output:
                out.failures.append(f"{stage}:\n{output[-3000:]}")
    return out

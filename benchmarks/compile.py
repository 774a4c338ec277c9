"""Benchmark `agentspec compile`: compile time per example spec, bundle size, and a 5,000-tool spec.

For each spec in specs/*.agent: the median of 7 in-process `load` + `check` + `emit` + `write`
runs, and the gzip size `wrangler deploy --dry-run` reports for the generated project (bar:
under 64 KiB). Then the 5,000-tool spec from benchmarks/gen_spec.py: the median of 3 compiles
(bar: under 10 s). Prints PASS/FAIL per bar; exits 1 if any bar fails.

    python benchmarks/compile.py            # from the repository root, in the venv
"""

from __future__ import annotations

import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentspec.check import check
from agentspec.emit import CODEGEN, emit, write
from agentspec.load import load

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.agent"))
BIN = CODEGEN / "node_modules" / ".bin"
GZIP_BAR_KIB = 64.0
BIG_TOOLS = 5000
BIG_BAR_S = 10.0
UPLOAD = re.compile(r"Total Upload: ([\d.]+) KiB / gzip: ([\d.]+) KiB")


def compile_once(spec: Path, outdir: Path) -> None:
    """What `agentspec compile SPEC -o OUTDIR` does, in process."""
    result = check(load(str(spec)))
    if result.spec is None:
        raise SystemExit(f"{spec} does not check: {[d.message for d in result.diagnostics]}")
    write(emit(result.spec), str(outdir), force=True)


def median_seconds(fn: Callable[[], None], runs: int) -> tuple[float, float]:
    """The median wall time of `runs` calls, and the median CPU time of this process for them.

    CPU time is printed beside wall time because a busy machine inflates the wall time alone.
    """
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def gzip_kib(project: Path) -> float | None:
    """The gzip size wrangler reports for a dry-run bundle of `project`, or None if it failed."""
    link = project / "node_modules"
    if not link.exists():
        link.symlink_to(CODEGEN / "node_modules", target_is_directory=True)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "WRANGLER_SEND_METRICS": "false",
        "CLOUDFLARE_CF_FETCH_ENABLED": "false",
        "WRANGLER_HIDE_BANNER": "true",
        "NO_COLOR": "1",
    }
    argv = [str(BIN / "wrangler"), "deploy", "--dry-run", "--outdir", "dist", "--env", "production"]
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    match = UPLOAD.search(done.stdout + done.stderr)
    if done.returncode != 0 or match is None:
        sys.stderr.write(done.stdout + done.stderr)
        return None
    return float(match[2])


def big_spec_generator() -> Callable[[int], str]:
    """benchmarks/gen_spec.py's `generate`, or a minimal stand-in if that file is absent."""
    path = Path(__file__).resolve().parent / "gen_spec.py"
    if path.exists():
        module_spec = importlib.util.spec_from_file_location("gen_spec", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.generate  # type: ignore[no-any-return]
    return _minimal_generate


def _minimal_generate(n_tools: int) -> str:
    """n read-only tools, ten per workflow: enough to time the compiler at scale."""
    head = (
        'agent generated version 1 {\n  auth bearer secret API_TOKENS\n  tenant header "x-tenant-id"\n'
        '  store kv summaries\n  model tier low { primary "@cf/openai/gpt-oss-20b" timeout 8s }\n'
    )
    parts = [head]
    for g in range((n_tools + 9) // 10):
        names = [f"g{g}_t{i}" for i in range(min(10, n_tools - g * 10))]
        parts.extend(
            f'  tool {n} {{ GET "https://svc{g}.example.com/v1/{n}/{{id}}" risk low read_only '
            "args { id: string } }\n"
            for n in names
        )
        parts.append(
            f"  workflow w{g} class c {{\n    tools allow [{', '.join(names)}]\n"
            f'    outbound allow ["svc{g}.example.com"]\n    pii mask [email] before persist\n'
            f'    step s = call {names[0]} with {{ id: "{{params.id}}" }} retry 2\n  }}\n'
        )
    return "".join(parts) + "}\n"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    os.chdir(ROOT)  # specs import their libraries relative to themselves; keep paths short
    failed = False
    with tempfile.TemporaryDirectory(prefix="agentspec-bench-") as tmp:
        work = Path(tmp)
        print(f"{'spec':<22} {'compile (median of 7)':>22} {'gzip bundle':>12}  bar < {GZIP_BAR_KIB:g} KiB")
        for spec in SPECS:
            out = work / spec.stem
            seconds, _ = median_seconds(lambda spec=spec, out=out: compile_once(spec, out), runs=7)
            kib = gzip_kib(out)
            ok = kib is not None and kib < GZIP_BAR_KIB
            failed |= not ok
            size = f"{kib:.2f} KiB" if kib is not None else "error"
            print(f"{spec.stem:<22} {seconds * 1000:>19.1f} ms {size:>12}  {verdict(ok)}")

        generate = big_spec_generator()
        big = work / "big.agent"
        text = generate(BIG_TOOLS)
        big.write_text(text, encoding="utf-8")
        out = work / "big"
        seconds, cpu = median_seconds(lambda: compile_once(big, out), runs=3)
        ok = seconds < BIG_BAR_S
        failed |= not ok
        lines = text.count("\n")
        print(
            f"{BIG_TOOLS}-tool spec ({lines} lines): compile {seconds:.2f} s wall, {cpu:.2f} s CPU "
            f"(median of 3), bar < {BIG_BAR_S:g} s  {verdict(ok)}"
        )
        files = sorted(p for p in out.rglob("*") if p.is_file())
        policy_kib = (out / "policy" / "policy.json").stat().st_size / 1024
        print(f"  output: {len(files)} files, policy.json {policy_kib:.0f} KiB")
        kib = gzip_kib(out)
        size = f"{kib:.2f} KiB" if kib is not None else "error"
        print(f"  gzip bundle: {size} (information; the 64 KiB bar applies to the example specs)")
    print("all bars PASS" if not failed else "some bars FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

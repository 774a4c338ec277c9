"""The runtime library's layout holds: no import cycle between its modules, no function longer than
MAX_FUNCTION_LINES in the runtime or the checker, and every runtime module opens by saying its role."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODEGEN = ROOT / "codegen" / "cloudflare"
RUNTIME = CODEGEN / "runtime"
# The generated file is data (the schema's types and the schema itself), not code anyone edits.
GENERATED = {"policy_types.ts"}
MAX_FUNCTION_LINES = 80

# `import ... from "./x"`, `export ... from "./x"` (type-only ones too: a type cycle is still a cycle of the
# design) and `import "./x"`, each starting a line; spans lines for `import {\n a,\n} from "./x"`.
IMPORT = re.compile(r'^(?:import|export)\b[^;]*?\bfrom\s+"(\./[^"]+)"|^import\s+"(\./[^"]+)"', re.M | re.S)


def modules(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.ts") if p.name not in GENERATED)


def import_graph(directory: Path) -> dict[str, set[str]]:
    """Module name -> the runtime modules it imports (relative imports only; `cloudflare:*` and packages aside)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(directory.glob("*.ts")):
        targets = {(m.group(1) or m.group(2))[2:].removesuffix(".ts") for m in IMPORT.finditer(path.read_text())}
        graph[path.stem] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the modules along it (first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_runtime_has_no_import_cycle() -> None:
    graph = import_graph(RUNTIME)
    # The graph is read at all: the Durable Object imports its roles, and the roles do not import it back.
    assert {"session", "registry", "task_chain", "slo", "decisions", "meta"} <= graph["object"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_every_import_names_a_runtime_module() -> None:
    graph = import_graph(RUNTIME)
    missing = {(m, t) for m, targets in graph.items() for t in targets if t not in graph}
    assert not missing


def test_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.ts").write_text('import { b } from "./b";\nexport const a = 1;\n')
    (tmp_path / "b.ts").write_text('import {\n  c,\n} from "./c";\nexport const b = 1;\n')
    (tmp_path / "c.ts").write_text('// import { x } from "./a"; is a comment\nimport type { A } from "./a";\n')
    assert find_cycle(import_graph(tmp_path)) == ["a", "b", "c", "a"]
    (tmp_path / "c.ts").write_text('export const c = "./a";\n')
    assert find_cycle(import_graph(tmp_path)) is None


def test_every_runtime_module_opens_with_its_role() -> None:
    unexplained = [p.name for p in modules(RUNTIME) if not p.read_text().startswith("//")]
    assert not unexplained


def _runtime_function_lengths() -> list[dict[str, Any]]:
    if shutil.which("node") is None or not (CODEGEN / "node_modules" / "typescript").is_dir():
        pytest.skip("the runtime toolchain (node, codegen/cloudflare/node_modules) is not installed")
    files = [p.relative_to(CODEGEN).as_posix() for p in modules(RUNTIME)]
    out = subprocess.run(
        ["node", "function_lengths.mjs", *files], cwd=CODEGEN, capture_output=True, text=True, timeout=120, check=True
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_no_runtime_function_is_longer_than_the_limit() -> None:
    rows = _runtime_function_lengths()
    by_name = {(r["file"], r["name"]): r["lines"] for r in rows}
    # The measure is real: it sees methods, arrow functions and functions, with their true extent.
    assert by_name[("runtime/names.ts", "sloMonitorName")] == 1
    assert by_name[("runtime/session.ts", "turn")] >= 15
    assert ("runtime/worker.ts", "createWorker") in by_name
    long = sorted((r["lines"], r["file"], r["name"], r["line"]) for r in rows if r["lines"] > MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def python_function_lengths(path: Path) -> list[tuple[int, str, int]]:
    """(lines, name, first line) of every function in `path`, decorators included."""
    rows = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            rows.append(((node.end_lineno or node.lineno) - first + 1, node.name, first))
    return rows


def test_no_checker_function_is_longer_than_the_limit() -> None:
    agentspec = ROOT / "agentspec"
    files = [agentspec / "check.py", agentspec / "resolve.py", *sorted((agentspec / "passes").glob("*.py"))]
    long = [
        (lines, path.relative_to(ROOT).as_posix(), name, line)
        for path in files
        for lines, name, line in python_function_lengths(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_python_measure_counts_a_function_whole(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("@decorator\ndef f():\n    x = 1\n\n    return x\n")
    assert python_function_lengths(source) == [(5, "f", 1)]

"""The generated projects against the real toolchain: `tsc --noEmit` (strict) and `wrangler deploy --dry-run`.

Every example spec and the escaping fixture is compiled once per session into a temporary
directory whose `node_modules` is a symlink to the one shared install in
codegen/cloudflare/node_modules (see codegen/cloudflare/README.md). Nothing here contacts
Cloudflare: wrangler runs offline, with metrics and the cf fetch disabled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentspec.cli import main
from agentspec.emit import CODEGEN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPECS = [*sorted((ROOT / "specs").glob("*.agent")), ROOT / "tests" / "fixtures" / "escaping.agent"]
NODE_MODULES = CODEGEN / "node_modules"
BIN = NODE_MODULES / ".bin"
TIMEOUT = 120  # seconds per subprocess; a normal run takes 1-3 s
GZIP_BAR_KIB = 64.0
UPLOAD = re.compile(r"Total Upload: ([\d.]+) KiB / gzip: ([\d.]+) KiB")


@dataclass(frozen=True)
class Project:
    name: str
    path: Path


def toolchain_env() -> dict[str, str]:
    """Quiet and offline wrangler, with the pinned Node 22 first on PATH."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "WRANGLER_SEND_METRICS": "false",
        "CLOUDFLARE_CF_FETCH_ENABLED": "false",
        "WRANGLER_HIDE_BANNER": "true",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        "CI": "1",
    }


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=toolchain_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    if not (BIN / "node").exists():
        pytest.fail(
            f"{BIN / 'node'} is missing: install the shared toolchain with `npm --prefix codegen/cloudflare ci`",
            pytrace=False,
        )
    version = run([str(BIN / "node"), "--version"], ROOT).stdout.strip()
    assert version.startswith("v22."), f"codegen/cloudflare pins Node 22, found {version!r}"
    root = tmp_path_factory.mktemp("generated")
    out: dict[str, Project] = {}
    for spec in SPECS:
        path = root / spec.stem
        code = main(["compile", str(spec), "-o", str(path)])
        assert code == 0, f"`agentspec compile {spec}` exited {code}"
        (path / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
        out[spec.stem] = Project(spec.stem, path)
    return out


@pytest.mark.parametrize("name", [s.stem for s in SPECS])
def test_typecheck(name: str, projects: dict[str, Project]) -> None:
    project = projects[name]
    result = run([str(BIN / "tsc"), "--noEmit", "-p", "tsconfig.json"], project.path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "error TS" not in output, output


@pytest.mark.parametrize("name", [s.stem for s in SPECS])
def test_bundle(name: str, projects: dict[str, Project]) -> None:
    project = projects[name]
    # Through the project's own script, as a user deploys: it names the production environment, so wrangler
    # has nothing to warn about (no "no target environment", no key missing from an environment).
    result = run(["npm", "run", "deploy", "--", "--dry-run", "--outdir", "dist"], project.path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "> wrangler deploy --env production --dry-run --outdir dist" in output, output
    assert "WARNING" not in output, output
    match = UPLOAD.search(output)
    assert match, f"no `Total Upload` line in wrangler's output:\n{output}"
    total, gzip = float(match[1]), float(match[2])
    assert 0 < gzip < total
    assert gzip < GZIP_BAR_KIB, f"{name}: gzip bundle {gzip} KiB is over the {GZIP_BAR_KIB} KiB bar"
    assert (project.path / "dist" / "index.js").is_file()
    # The production config: Workers AI bound, every task workflow bound to its class.
    assert re.search(r"env\.AI\s+AI", output), output
    assert re.search(r"env\.SESSION \(SessionDO\)\s+Durable Object", output), output
    policy = json.loads((project.path / "policy" / "policy.json").read_text(encoding="utf-8"))
    bindings = [w["task_binding"] for w in policy["workflows"].values() if w["task_binding"]]
    assert bindings
    for binding in bindings:
        assert re.search(rf"env\.{binding} \(\w+Workflow\)\s+Workflow", output), (binding, output)


def test_npm_test_script_passes(projects: dict[str, Project]) -> None:
    project = projects["support_desk"]
    script = json.loads((project.path / "package.json").read_text(encoding="utf-8"))["scripts"]["test"]
    argv = script.split()
    result = run([str(BIN / argv[0]), *argv[1:]], project.path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lockfile_is_in_sync_with_package_json(tmp_path: Path) -> None:
    """`npm ci` refuses a lockfile out of step with package.json; a dry run checks that without installing."""
    npm = shutil.which("npm")
    assert npm, "npm is missing (the Makefile installs the toolchain with it)"
    path = tmp_path / SPECS[0].stem
    assert main(["compile", str(SPECS[0]), "-o", str(path)]) == 0
    result = run([npm, "ci", "--dry-run", "--ignore-scripts", "--no-audit", "--no-fund"], path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "in sync" not in output, output
    assert not (path / "node_modules").exists()  # a dry run

"""Execute a notebook in a fresh process: a notebook (already parameterized) in, the executed notebook out.

nbclient runs in a child Python, not in the pytest process: a kernel client in a process that earlier tests have
filled with event loops, threads and servers was seen to wait forever on an idle kernel (a clean-clone run hung in
the fixture while the same test alone passed in 16 s). The child has a hard deadline; a hang past it is killed and
reported as such, with whatever the child printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

_RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
src, out, cwd, cell_timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
nb = nbformat.read(src, as_version=4)
try:
    NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
finally:
    nbformat.write(nb, out)
"""


class NotebookFailed(AssertionError):
    """A cell raised, or the run passed its deadline; the message carries the child's output."""


def execute(
    nb: nbformat.NotebookNode, cwd: Path, cell_timeout: float = 600, deadline: float = 900
) -> nbformat.NotebookNode:
    with tempfile.TemporaryDirectory(prefix="agentspec-nb-") as tmp:
        src, out = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        nbformat.write(nb, src)
        argv = [sys.executable, "-c", _RUNNER, str(src), str(out), str(cwd), str(cell_timeout)]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=deadline, env=dict(os.environ), check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise NotebookFailed(f"the notebook did not finish within {deadline}s:\n{exc.stderr or ''}") from exc
        executed = nbformat.read(out, as_version=4) if out.exists() else nb
        if done.returncode != 0:
            raise NotebookFailed(f"the notebook failed (exit {done.returncode}):\n{done.stderr[-6000:]}")
        return executed

"""Host forms: the checker and the Python evaluator read every host the runtime's WHATWG URL reads, the same way.

Hypothesis generates hosts in every form Python and WHATWG might read differently (IPv4 as one
number, hex, octal or short; IPv6 long, short or mixed; names in upper case; ports, default or
not). For every URL the checker accepts, the runtime's `new URL()` (node, the toolchain's V8)
must accept it and give the host the checker computed, and the runtime's own `isHostAllowed`
(src/runtime/guard.ts, bundled with esbuild) must agree with the Python evaluator's
`host_allowed` on every allowlist entry the checker accepts: 100% agreement.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentspec.policy import host_allowed
from agentspec.resolve import outbound_entry, url_host

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "codegen" / "cloudflare" / "node_modules" / ".bin"
GUARD = ROOT / "codegen" / "cloudflare" / "runtime" / "guard.ts"

pytestmark = pytest.mark.skipif(not (BIN / "node").exists(), reason="the toolchain's node is not installed")

_RUNNER = """
import { isHostAllowed } from "./guard.js";
const { urls, entries } = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = urls.map((u) => {
  try {
    const url = new URL(u);
    return { ok: true, host: url.host, allowed: entries.map((e) => isHostAllowed([e], url)) };
  } catch { return { ok: false }; }
});
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("guard")
    subprocess.run(
        [
            str(BIN / "esbuild"),
            str(GUARD),
            "--bundle",
            "--format=cjs",
            "--platform=node",
            f"--outfile={out / 'guard.js'}",
        ],
        check=True,
        capture_output=True,
    )
    (out / "run.js").write_text(
        _RUNNER.replace(
            'import { isHostAllowed } from "./guard.js";', 'const { isHostAllowed } = require("./guard.js");'
        )
    )
    return out


def _ipv4() -> st.SearchStrategy[str]:
    def render(n: int, base: str) -> str:
        return {"d": str(n), "x": hex(n), "X": hex(n).upper().replace("0X", "0x"), "o": "0" + oct(n)[2:]}[base]

    bases = st.sampled_from("dxXo")
    whole = st.builds(render, st.integers(0, 2**32 - 1), bases)
    dotted = st.lists(st.tuples(st.integers(0, 300), bases), min_size=1, max_size=5).map(
        lambda parts: ".".join(render(n, b) for n, b in parts)
    )
    plain = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(lambda p: ".".join(map(str, p)))
    return st.one_of(whole, dotted, plain)


def _ipv6() -> st.SearchStrategy[str]:
    hextet = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x7F00, 0xDB8, 0x2001])
    groups = st.lists(hextet, min_size=8, max_size=8)

    def render(g: list[int], style: int) -> str:
        full = ":".join(f"{x:x}" for x in g)
        if style == 0:
            return full
        if style == 1:
            return ":".join(f"{x:04x}" for x in g)
        return ipaddress.IPv6Address(full).compressed if style == 2 else ipaddress.IPv6Address(full).exploded.upper()

    return st.builds(render, groups, st.integers(0, 3)).map(lambda h: f"[{h}]")


def _name() -> st.SearchStrategy[str]:
    label = st.text("abcXYZ019-_", min_size=1, max_size=6)
    return st.lists(label, min_size=1, max_size=3).map(".".join)


HOSTS = st.one_of(_ipv4(), _ipv6(), _name(), st.sampled_from(["localhost", "[::1]", "127.0.0.1", "0.0.0.0"]))
PORTS = st.sampled_from(["", ":80", ":443", ":8787", ":08787", ":0", ":65535"])
URLS = st.builds(lambda s, h, p: f"{s}://{h}{p}/v1/x", st.sampled_from(["http", "https"]), HOSTS, PORTS)
ENTRIES = st.builds(lambda h, p: f"{h}{p}", HOSTS, PORTS)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(URLS, min_size=40, max_size=40), st.lists(ENTRIES, min_size=12, max_size=12))
def test_checker_evaluator_and_runtime_read_hosts_alike(runtime: Path, urls: list[str], entries: list[str]) -> None:
    accepted = [(u, h) for u in urls if (h := url_host(u)) is not None]
    kept = [e for e in entries if outbound_entry(e) is not None]
    # The entries the checker keeps include the hosts it accepted, so allowlist matches happen, not only misses.
    kept += [h for _, h in accepted[:6]]
    payload = json.dumps({"urls": [u for u, _ in accepted], "entries": kept})
    run = subprocess.run(
        [str(BIN / "node"), str(runtime / "run.js")], input=payload, capture_output=True, text=True, check=True
    )
    for (url, host), seen in zip(accepted, json.loads(run.stdout), strict=True):
        assert seen["ok"], url
        assert seen["host"] == host, url
        for entry, allowed in zip(kept, seen["allowed"], strict=True):
            assert host_allowed([entry], url) == allowed, (url, entry)


def test_the_issue_cases() -> None:
    assert url_host("https://[::1]:8787/v1") == "[::1]:8787"  # no false positive on an IPv6 literal with a port
    assert host_allowed(["[::1]:8787"], "https://[::1]:8787/v1")
    assert url_host("https://billing.example.com:443/v1") == "billing.example.com"
    assert url_host("http://2130706433/") is None  # WHATWG reads 127.0.0.1
    assert url_host("http://0x7f.0.0.1/") is None
    assert url_host("http://[0:0:0:0:0:0:0:1]/") is None  # WHATWG writes [::1]
    assert outbound_entry("127.1") is None

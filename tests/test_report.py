"""The fleet export's reader, puller and review over a synthetic export (agentspec/report/synthetic.py): figures
against an independent computation from the raw lines, duplicates counted once, bad input reported by name,
chains verified, pulls incremental."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from agentspec.cli import main
from agentspec.report.engine import ANALYSIS_DIR, ReportInputError, open_export, write_analysis_copy
from agentspec.report.figures import compute
from agentspec.report.synthetic import generate
from agentspec.trace.fleet import check_chains, pull_all

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    generate(out, 1500, seed=3, part_rows=400)
    return out


def lines(root: Path, kind: str) -> list[dict]:
    return [json.loads(line) for p in sorted(root.glob(f"{kind}/*/*/*.ndjson")) for line in p.open()]


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def test_figures_match_an_independent_computation(export: Path) -> None:
    figures = compute(open_export(export))
    traces = lines(export, "traces")
    by_wf: dict[str, list[dict]] = defaultdict(list)
    for t in traces:
        by_wf[t["workflow"]].append(t["data"])
    latency = figures.by_workflow("latency")
    assert sorted(latency) == sorted(by_wf)
    for wf, rows in by_wf.items():
        assert latency[wf]["turns"] == len(rows)
        assert latency[wf]["p95"] == nearest_rank([r["latency_ms"] for r in rows], 0.95)
        assert latency[wf]["p50"] == nearest_rank([r["latency_ms"] for r in rows], 0.5)
    cache = {r["prompt_family"]: r for r in figures.rows("cache")}
    for wf, rows in by_wf.items():
        cached = sum(min(r["gen_ai.usage.cache_read.input_tokens"], r["gen_ai.usage.input_tokens"]) for r in rows)
        total = sum(r["gen_ai.usage.input_tokens"] for r in rows)
        assert cache[f"{wf}.turn"]["hit_pct"] == pytest.approx(100 * cached / total)
    calls = [d["data"] for d in lines(export, "decisions") if d["data"]["action"].startswith("tool.call:")]
    denied = {r["workflow"]: r for r in figures.rows("denied")}
    for wf in by_wf:
        mine = [c for c in calls if c["workflow"] == wf]
        assert denied[wf]["tool_calls"] == len(mine)
        assert denied[wf]["denied"] == sum(c["decision"] == "deny" for c in mine)
    # Locality: a follow-up turn is local when its affinity and region equal the previous turn's.
    sessions: dict[str, list[dict]] = defaultdict(list)
    for t in traces:
        sessions[t["session"]].append(t["data"])
    followups = local = 0
    for turns in sessions.values():
        turns.sort(key=lambda d: d["turn"])
        for a, b in pairwise(turns):
            followups += 1
            local += a["region"] == b["region"] and a["affinity"] == b["affinity"]
    loc = [r for r in figures.rows("locality") if r["dimension"] == "tenant"]
    assert sum(r["followups"] for r in loc) == followups
    assert sum(r["local"] for r in loc) == local
    assert local < followups  # the generator moves some turns to another colo: the figure can be wrong


def test_a_batch_delivered_twice_changes_no_figure(export: Path, tmp_path: Path) -> None:
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    before = compute(open_export(copy)).tables
    for kind in ("traces", "decisions"):
        part = sorted(copy.glob(f"{kind}/*/*/*.ndjson"))[0]
        shutil.copyfile(part, part.with_name("part-redelivered.ndjson"))
    assert compute(open_export(copy)).tables == before
    assert all(c.ok for c in check_chains(copy))


def _report(*args: str) -> int:
    return main(["report", *args])


def test_the_review_writes_one_html_file_with_its_figures(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "review.html"
    assert _report(str(export), "--previous", str(export), "-o", str(out)) == 0
    html = out.read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    data = json.loads(html.split('id="agentspec-figures">', 1)[1].split("</script>", 1)[0])
    assert data["tables"] == json.loads(json.dumps(compute(open_export(export)).tables))
    assert data["chain_counts"] == {
        "checked": len({t["session"] for t in lines(export, "traces")}),
        "broken": 0,
        "unverified": 0,
    }
    assert data["chains"] == []  # details only of chains with a problem


def test_slos_are_judged_against_the_spec(tmp_path: Path) -> None:
    export = tmp_path / "export"
    generate(export, 300, seed=5)
    out = tmp_path / "review.html"
    assert _report(str(export), "--spec", str(ROOT / "specs" / "support_desk.agent"), "-o", str(out)) == 0
    data = json.loads(out.read_text().split('id="agentspec-figures">', 1)[1].split("</script>", 1)[0])
    latency = {r["workflow"]: r for r in data["slo"] if r["sli"] == "latency"}
    orders = [t["data"]["latency_ms"] for t in lines(export, "traces") if t["workflow"] == "orders"]
    assert latency["orders"]["value"] == nearest_rank(orders, 0.95)
    assert latency["orders"]["holds"] is (nearest_rank(orders, 0.95) <= 2500)


def test_tampering_is_at_the_top_of_the_review(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    part = sorted(copy.glob("decisions/*/*/*.ndjson"))[0]
    events = [json.loads(line) for line in part.open()]
    events[3]["data"]["decision"] = "allow" if events[3]["data"]["decision"] != "allow" else "deny"
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = tmp_path / "review.html"
    assert _report(str(copy), "-o", str(out)) == 0
    assert "1 broken" in capsys.readouterr().out
    html = out.read_text()
    assert html.index('data-figure="chains.broken"') < html.index('id="headlines"')
    assert f'<td class="l">{events[3]["session"]}</td>' in html


@pytest.mark.parametrize("case", ["truncated", "schema", "empty", "not-json-event"])
def test_bad_exports_name_the_file(export: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    part = sorted(copy.glob("traces/*/*/*.ndjson"))[0]
    if case == "truncated":
        text = part.read_text()
        part.write_text(text[: text.index("\n", len(text) // 2) + 20])  # cut inside a line
    elif case == "schema":
        events = [json.loads(line) for line in part.open()]
        events[-1]["schema"] = 2
        part.write_text("".join(json.dumps(e) + "\n" for e in events))
    elif case == "empty":
        shutil.rmtree(copy / "traces")
    else:
        part.write_text('{"hello": "world"}\n')
    code = _report(str(copy), "-o", str(tmp_path / "r.html"))
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    if case == "empty":
        assert f"`{copy}` holds no traces" in err
    else:
        assert str(part.relative_to(copy)) in err, err
    assert not (tmp_path / "r.html").exists()


def test_a_spec_that_does_not_check_is_named(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = ROOT / "specs" / "invalid" / "E0001-unclosed-agent.agent"
    code = _report(str(export), "--spec", str(spec), "-o", str(tmp_path / "r.html"))
    err = capsys.readouterr().err
    assert code == 1
    assert f"the spec `{spec}` does not check" in err
    assert "E0001" in err


def test_a_missing_directory_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _report(str(tmp_path / "nope"), "-o", str(tmp_path / "r.html")) == 1
    assert "is not a directory" in capsys.readouterr().err


# ── pulling ────────────────────────────────────────────────────────────────


def test_pull_from_a_directory_is_incremental(export: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    shutil.copytree(export, src)
    assert main(["trace", "pull", "--all", "--url", str(src), "-o", str(out)]) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*.ndjson"))
    assert files == sorted(p.relative_to(src) for p in src.rglob("*.ndjson"))
    again = pull_all(str(src), out)
    assert again.fetched == [] and again.skipped == len(files)
    extra = src / "traces" / "dt=2026-12-09" / "workflow=orders" / "part-new.ndjson"
    extra.parent.mkdir(parents=True)
    shutil.copyfile(src / files[-1], extra)
    third = pull_all(str(src), out)
    assert third.fetched == ["traces/dt=2026-12-09/workflow=orders/part-new.ndjson"]


def test_pull_reports_what_it_could_not_verify(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    shutil.copytree(export, src)
    part = sorted(src.glob("decisions/*/*/*.ndjson"))[0]
    events = [json.loads(line) for line in part.open()]
    dropped = events.pop(0)  # seq 1 of a session, not (yet) in the export
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert main(["trace", "pull", "--all", "--url", str(src), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"chain of `{dropped['session']}`" in err and "not verifiable yet: seq 1 missing" in err


def test_pull_over_http_fetches_only_what_is_new(export: Path, tmp_path: Path) -> None:
    objects = sorted(p.relative_to(export).as_posix() for p in export.rglob("*.ndjson"))
    listed = [objects[: len(objects) // 2]]
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer admin"
        key = request.url.params.get("key")
        if key is not None:
            fetched.append(key)
            return httpx.Response(200, content=(export / key).read_bytes())
        return httpx.Response(
            200,
            json={
                "schema": 1,
                "objects": [
                    {"key": k, "size": 1, "etag": f"e-{k}", "uploaded": f"2026-12-01T00:00:{i:02d}.000Z"}
                    for i, k in enumerate(listed[0])
                ],
            },
        )

    transport = httpx.MockTransport(handler)
    out = tmp_path / "out"
    first = pull_all("http://runtime", out, admin_token="admin", transport=transport)
    assert sorted(first.fetched) == sorted(listed[0]) and sorted(fetched) == sorted(listed[0])
    listed[0] = objects
    fetched.clear()
    second = pull_all("http://runtime", out, admin_token="admin", transport=transport)
    assert sorted(fetched) == sorted(objects[len(objects) // 2 :])
    assert second.skipped == len(objects) // 2
    assert all(c.ok for c in check_chains(out))


def test_the_review_trusts_a_pull_only_for_files_unchanged_since(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["trace", "pull", "--all", "--url", str(export), "-o", str(out)]) == 0
    assert (out / ".agentspec-chains.json").exists()
    first = _report(str(out), "-o", str(tmp_path / "a.html"))
    assert first == 0 and 'data-figure="chains.broken" class="ok">0<' in (tmp_path / "a.html").read_text()
    # Tamper with the local copy after the pull: the pull's verdict no longer applies, the chain is checked again.
    part = sorted(out.glob("decisions/*/*/*.ndjson"))[0]
    events = [json.loads(line) for line in part.open()]
    events[0]["data"]["intent"] = "rewritten"
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert _report(str(out), "-o", str(tmp_path / "b.html")) == 0
    assert 'data-figure="chains.broken" class="bad">1<' in (tmp_path / "b.html").read_text()


# ── the analysis copy (Parquet, written at pull time) ─────────────────────────


def test_a_pull_writes_an_analysis_copy_that_gives_the_same_figures(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["trace", "pull", "--all", "--url", str(export), "-o", str(out)]) == 0
    copies = sorted(p.relative_to(out / ANALYSIS_DIR) for p in (out / ANALYSIS_DIR).rglob("*.parquet"))
    assert copies == sorted(p.relative_to(export).with_suffix(".parquet") for p in export.rglob("*.ndjson"))
    from_ndjson = compute(open_export(export)).tables
    assert compute(open_export(out)).tables == from_ndjson
    # A batch delivered twice, pulled: its copy is made too, and still no figure changes.
    part = sorted(export.glob("traces/*/*/*.ndjson"))[0]
    src = tmp_path / "src"
    shutil.copytree(export, src)
    shutil.copyfile(part, src / part.relative_to(export).with_name("part-redelivered.ndjson"))
    assert pull_all(str(src), out).fetched == [part.relative_to(export).with_name("part-redelivered.ndjson").as_posix()]
    assert compute(open_export(out)).tables == from_ndjson


def test_the_copy_is_not_trusted_for_a_file_changed_since(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["trace", "pull", "--all", "--url", str(export), "-o", str(out)]) == 0
    part = sorted(out.glob("traces/*/*/*.ndjson"))[0]
    events = [json.loads(line) for line in part.open()]
    events[0]["data"]["latency_ms"] = 10**9  # an outlier only the NDJSON holds now
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    latency = compute(open_export(out)).by_workflow("latency")
    assert latency[events[0]["workflow"]]["max"] == 10**9
    # Rewritten after the pull with another schema: named, as for an export never pulled.
    events[0]["schema"] = 2
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    with pytest.raises(ReportInputError, match=re.escape(str(part.relative_to(out))) + ".*schema 2"):
        open_export(out)


def test_a_copied_file_of_another_schema_is_named(export: Path, tmp_path: Path) -> None:
    # The copy keeps each event's schema and file: an old pull's copy of a schema-2 file is refused by name.
    out = tmp_path / "out"
    shutil.copytree(export, out)
    part = sorted(out.glob("decisions/*/*/*.ndjson"))[0]
    events = [json.loads(line) for line in part.open()]
    events[-1]["schema"] = 2
    part.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert write_analysis_copy(out) == []
    with pytest.raises(ReportInputError, match=re.escape(f"`{part}` has export schema 2")):
        open_export(out)


def test_a_truncated_file_is_left_uncopied_and_named(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    shutil.copytree(export, out)
    part = sorted(out.glob("traces/*/*/*.ndjson"))[0]
    text = part.read_text()
    part.write_text(text[: text.index("\n", len(text) // 2) + 20])
    assert write_analysis_copy(out) == [part.relative_to(out).as_posix()]
    code = _report(str(out), "-o", str(out / "r.html"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"`{part}` is not valid NDJSON" in err, err


def test_a_damaged_copy_falls_back_to_the_ndjson(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(export, out)
    assert write_analysis_copy(out) == []
    copy = sorted((out / ANALYSIS_DIR).rglob("*.parquet"))[0]
    copy.write_bytes(copy.read_bytes()[:100])
    assert compute(open_export(out)).tables == compute(open_export(export)).tables

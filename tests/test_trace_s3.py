"""`agentspec trace pull --all s3://BUCKET/PREFIX` against a loopback S3-compatible server (moto's, in a thread):
the same files as a directory pull, verified as they come, incremental and resumable, and clear errors for a
missing bucket, an unreachable endpoint and bad files in the bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from agentspec.cli import main  # noqa: E402
from agentspec.report.engine import ANALYSIS_DIR, open_export  # noqa: E402
from agentspec.report.figures import compute  # noqa: E402
from agentspec.report.synthetic import generate  # noqa: E402
from agentspec.trace import fleet  # noqa: E402

BUCKET, PREFIX = "fleet-export", "support-desk/v1"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    generate(out, 600, seed=11, part_rows=150)
    return out


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # What a user of an S3-compatible store sets; no shared config of this machine leaks in.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint)


@pytest.fixture
def bucket(endpoint: str, export: Path) -> Iterator[Any]:
    """The export uploaded under PREFIX, as the runtime's R2 bucket holds it, plus an object that is not export."""
    s3 = client(endpoint)
    s3.create_bucket(Bucket=BUCKET)
    for path in sorted(export.rglob("*.ndjson")):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{path.relative_to(export).as_posix()}", Body=path.read_bytes())
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/README.txt", Body=b"not export")
    yield s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def ndjson(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.ndjson") if ANALYSIS_DIR not in p.parts)


def pull(endpoint: str, out: Path) -> int:
    return main(["trace", "pull", "--all", f"s3://{BUCKET}/{PREFIX}", "--endpoint-url", endpoint, "-o", str(out)])


def test_a_bucket_pull_is_a_directory_pull(
    endpoint: str, export: Path, bucket: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert pull(endpoint, out) == 0
    said = capsys.readouterr().out
    files = ndjson(export)
    assert ndjson(out) == files and not (out / "README.txt").exists()
    assert all((out / f).read_bytes() == (export / f).read_bytes() for f in files)
    assert f"pulled {len(files)} new objects (0 already here)" in said and "0 broken" in said
    # The review over the pull (from its Parquet copy) equals the review over the source files.
    assert (out / ANALYSIS_DIR / "manifest.json").exists()
    assert compute(open_export(out)).tables == compute(open_export(export)).tables
    # Again: nothing new. Then one new object and one rewritten (new ETag): only those two come.
    assert fleet.pull_all(f"s3://{BUCKET}/{PREFIX}", out, s3=fleet.S3Options(endpoint)).fetched == []
    new = f"{PREFIX}/traces/dt=2026-12-09/workflow=orders/part-new.ndjson"
    bucket.put_object(Bucket=BUCKET, Key=new, Body=(export / files[-1]).read_bytes())
    changed = next(f for f in files if f.startswith("decisions/"))
    body = b"".join(line + b"\n" for line in (export / changed).read_bytes().splitlines()[:-1])
    bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{changed}", Body=body)
    third = fleet.pull_all(f"s3://{BUCKET}/{PREFIX}", out, s3=fleet.S3Options(endpoint))
    assert sorted(third.fetched) == sorted([changed, new.removeprefix(PREFIX + "/")])
    assert third.skipped == len(files) - 1
    assert (out / changed).read_bytes() == body


def test_the_endpoint_comes_from_the_environment_too(
    endpoint: str, export: Path, bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    out = tmp_path / "out"
    assert main(["trace", "pull", "--all", "--url", f"s3://{BUCKET}/{PREFIX}/", "-o", str(out)]) == 0
    assert ndjson(out) == ndjson(export)


def test_an_interrupted_bucket_pull_resumes(
    endpoint: str, export: Path, bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, written = tmp_path / "out", []
    real = fleet._write_atomic

    def dies_after_three(path: Path, body: bytes | Path) -> None:
        if len(written) == 3:
            raise KeyboardInterrupt  # the user's ^C, or the machine going away, mid-pull
        real(path, body)
        written.append(path)

    monkeypatch.setattr(fleet, "_write_atomic", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        fleet.pull_all(f"s3://{BUCKET}/{PREFIX}", out, s3=fleet.S3Options(endpoint))
    monkeypatch.setattr(fleet, "_write_atomic", real)
    second = fleet.pull_all(f"s3://{BUCKET}/{PREFIX}", out, s3=fleet.S3Options(endpoint))
    assert second.skipped == 3 and len(second.fetched) == len(ndjson(export)) - 3
    assert ndjson(out) == ndjson(export) and not list(out.rglob("*.part"))
    assert all(c.ok for c in fleet.chains_of(out))


@pytest.mark.parametrize("case", ["no-bucket", "unreachable", "truncated", "schema", "no-bucket-name"])
def test_bucket_problems_are_clear(
    endpoint: str, export: Path, bucket: Any, tmp_path: Path, case: str, capsys: pytest.CaptureFixture
) -> None:
    key = next(f for f in ndjson(export) if f.startswith("traces/"))
    source, url = f"s3://{BUCKET}/{PREFIX}", endpoint
    if case == "no-bucket":
        source = "s3://no-such-bucket/x"
    elif case == "unreachable":
        url = "http://127.0.0.1:9"  # discard port: nothing listens
    elif case == "no-bucket-name":
        source = "s3:///x"
    elif case == "truncated":
        text = (export / key).read_bytes()
        bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}", Body=text[: len(text) // 2])
    else:
        events = [json.loads(line) for line in (export / key).open()]
        events[0]["schema"] = 2
        bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}", Body="".join(json.dumps(e) + "\n" for e in events))
    code = main(["trace", "pull", "--all", source, "--endpoint-url", url, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    expected = {
        "no-bucket": "`s3://no-such-bucket/x`: the store answered NoSuchBucket",
        "unreachable": "cannot read `s3://fleet-export/support-desk/v1`: Could not connect",
        "no-bucket-name": "names no bucket",
        "truncated": f"`{tmp_path / 'out' / key}` line",
        "schema": "has export schema 2",
    }[case]
    assert expected in err, err


def test_the_source_is_given_once(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["trace", "pull", "--all", "s3://b/p", "--url", "s3://b/p", "-o", str(tmp_path)]) == 2
    assert "pass the source once" in capsys.readouterr().err
    assert main(["trace", "pull", "--all", "-o", str(tmp_path)]) == 2
    assert "neither given" in capsys.readouterr().err


def test_an_empty_prefix_pulls_nothing_and_the_review_says_so(
    endpoint: str, bucket: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    url = f"s3://{BUCKET}/no-such-prefix"
    assert main(["trace", "pull", "--all", url, "--endpoint-url", endpoint, "-o", str(out)]) == 0
    assert "pulled 0 new objects (0 already here)" in capsys.readouterr().out
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert f"`{out}` holds no traces" in err and "Traceback" not in err

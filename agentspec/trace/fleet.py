"""The fleet export, pulled and verified: a runtime's `GET /v1/exports`, a local export directory or an S3-compatible
bucket (`s3://bucket/prefix`: R2's S3 API, MinIO, AWS) in, the same Hive-partitioned NDJSON files in a local
directory out, plus what could and could not be verified.

The layout is the runtime's (`codegen/cloudflare/runtime/export.ts`):

    traces/dt=YYYY-MM-DD/workflow=NAME/part-HASH.ndjson      one line per finished turn
    decisions/dt=…/workflow=…/part-….ndjson                   one line per decision record (session or task)
    tasks/dt=…/workflow=…/part-….ndjson                       task step records and task summaries
    policies/HEX.json                                         the policy.json a runtime reported (`GET /v1/policy`),
                                                              one per spec hash (`agentspec trace replay` reads them)

A pull is incremental and resumable: `DIR/.agentspec-pull.json` keeps each object's key and etag and the newest
upload time seen; each object is written to a temporary name and renamed, and the state is saved after each one,
so an interrupted pull starts again where it stopped and a repeated pull fetches only what is new. A bucket is
listed whole each time (S3 has no "uploaded since"; keys are content hashes, not times) and an object is fetched
when its key or ETag is new. Each pull ends by writing the Parquet analysis copy of what it fetched
(`agentspec/report/engine.py`), when DuckDB is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from agentspec.trace.client import answer_detail
from agentspec.trace.schema import GENESIS_HASH, STRING_FIELDS
from agentspec.trace.verify import Problem, record_hash, verify

#: The export line format this reader knows (the runtime's EXPORT_SCHEMA).
EXPORT_SCHEMA = 1
KINDS = ("traces", "decisions", "tasks")
STATE_FILE = ".agentspec-pull.json"
#: The policies the runtime reported, one `HEX.json` per spec hash.
POLICIES_DIR = "policies"
#: The chains a pull verified, with the decision files they were verified from (see `chains_of`).
CHAINS_FILE = ".agentspec-chains.json"
# Objects are listed from a little before the newest upload seen: an object written while the last listing ran
# may carry an earlier upload time. Its key and etag keep it from being fetched twice.
_OVERLAP = timedelta(minutes=5)


class ExportError(RuntimeError):
    """The export could not be read: the runtime did not answer, or a file is not an export file."""


@dataclass(frozen=True)
class ChainCheck:
    """One session's (or task's) decision chain as found in the export."""

    tenant: str
    session: str
    workflow: str
    records: int
    problems: tuple[Problem, ...]
    #: Seqs below the newest that the export does not hold (yet): the chain could not be verified.
    missing: tuple[int, ...] = ()

    @property
    def verified(self) -> bool:
        return not self.missing

    @property
    def ok(self) -> bool:
        return self.verified and not any(p.severity == "error" for p in self.problems)


class ChainTally:
    """The chains a pull or a replay checked, split by outcome (for a class with a `chains` field)."""

    chains: Sequence[ChainCheck]

    @property
    def broken(self) -> list[ChainCheck]:
        return [c for c in self.chains if c.verified and not c.ok]

    @property
    def unverified(self) -> list[ChainCheck]:
        return [c for c in self.chains if not c.verified]


@dataclass
class PullResult(ChainTally):
    """What a pull did: objects fetched and skipped, and the chains it checked."""

    fetched: list[str] = field(default_factory=list)
    skipped: int = 0
    chains: list[ChainCheck] = field(default_factory=list)
    #: Files the analysis copy could not be made of (the review reads their NDJSON, and names them if bad).
    unconverted: list[str] = field(default_factory=list)


# ── reading export files ────────────────────────────────────────────────────


def export_files(root: Path, kind: str) -> list[Path]:
    """The export files of one kind under `root`, in key order."""
    return sorted((root / kind).glob("dt=*/workflow=*/*.ndjson"))


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of one export file. Raises ExportError naming the file and line for a truncated or foreign
    line, or another schema version."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportError(f"`{path}` line {n} is not JSON ({exc.msg}); a truncated file?") from exc
            if not isinstance(event, dict) or "id" not in event or "data" not in event:
                raise ExportError(f"`{path}` line {n} is not an export event")
            if event.get("schema") != EXPORT_SCHEMA:
                raise ExportError(
                    f"`{path}` line {n} has export schema {event.get('schema')!r}; this agentspec reads {EXPORT_SCHEMA}"
                )
            yield event


def check_chains(root: Path, files: Iterable[Path] | None = None) -> list[ChainCheck]:
    """Verify the decision chain of every session (and task) found in `root`'s decision files, or only of the
    sessions that appear in `files` (what a pull just fetched). Each event is counted once by its id."""
    all_files = export_files(root, "decisions")
    wanted: set[tuple[str, str]] | None = None
    if files is not None:
        wanted = {(e["tenant"], e["session"]) for p in files for e in read_events(p)}
    chains: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    workflows: dict[tuple[str, str], str] = {}
    for path in all_files:
        for event in read_events(path):
            key = (event["tenant"], event["session"])
            if wanted is not None and key not in wanted:
                continue
            chains.setdefault(key, {})[int(event["seq"])] = event["data"]
            workflows[key] = str(event["data"].get("workflow", ""))
    out = []
    for (tenant, session), by_seq in sorted(chains.items()):
        # A gap may be records still in the queue, or records removed: either way the chain cannot be judged
        # from the export alone, and is reported as unverified rather than as tampered with.
        missing = tuple(sorted(set(range(1, max(by_seq) + 1)) - set(by_seq)))
        records = [by_seq[s] for s in sorted(by_seq)]
        problems = () if missing or _intact(records) else tuple(verify(records))
        out.append(ChainCheck(tenant, session, workflows[(tenant, session)], len(records), problems, missing))
    return out


def _intact(records: list[dict[str, Any]]) -> bool:
    """The common case, checked fast: seqs 1..n, every link and hash right, every string field a string. Only a
    chain that fails this goes through `verify`, which locates and explains what is wrong."""
    prev = GENESIS_HASH
    for seq, record in enumerate(records, 1):
        if record.get("seq") != seq or record.get("prev_hash") != prev:
            return False
        if not all(isinstance(record.get(f), str) for f in STRING_FIELDS) or record_hash(record) != record["hash"]:
            return False
        prev = record["hash"]
    return True


def _fingerprint(root: Path) -> dict[str, list[int]]:
    return {
        p.relative_to(root).as_posix(): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in export_files(root, "decisions")
    }


def _chain_json(c: ChainCheck) -> Any:
    # An intact chain is four values (most of a fleet's chains); the others keep their problems.
    if c.ok:
        return [c.tenant, c.session, c.workflow, c.records]
    return {
        "tenant": c.tenant,
        "session": c.session,
        "workflow": c.workflow,
        "records": c.records,
        "missing": list(c.missing),
        "problems": [p.as_json() for p in c.problems],
    }


def _chain_of(d: Any) -> ChainCheck:
    if isinstance(d, list):
        return ChainCheck(str(d[0]), str(d[1]), str(d[2]), int(d[3]), ())
    problems = tuple(
        Problem(p["message"], p["seq"], p["index"], p["field"], tuple(p["notes"]), p["help"], p["severity"])
        for p in d["problems"]
    )
    return ChainCheck(d["tenant"], d["session"], d["workflow"], d["records"], problems, tuple(d["missing"]))


def save_chains(root: Path, chains: Iterable[ChainCheck]) -> None:
    """Keep what a pull verified, with the fingerprint (size, mtime) of every decision file it came from."""
    body = {"files": _fingerprint(root), "chains": [_chain_json(c) for c in chains]}
    tmp = root / f"{CHAINS_FILE}.tmp"
    tmp.write_text(json.dumps(body, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, root / CHAINS_FILE)


def chains_of(root: Path) -> list[ChainCheck]:
    """Every chain of the export at `root`: what the last pull verified when no decision file changed since
    (the pull verifies as it goes, so a review need not do it again), else verified now."""
    try:
        body = json.loads((root / CHAINS_FILE).read_text(encoding="utf-8"))
        if body["files"] == _fingerprint(root):
            return [_chain_of(d) for d in body["chains"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return check_chains(root)


# ── pulling ────────────────────────────────────────────────────────────────


def _load_state(out: Path) -> dict[str, Any]:
    try:
        state = json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"objects": {}, "newest": None}
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"`{out / STATE_FILE}` is unreadable ({exc}); remove it to pull everything again") from exc
    return state if isinstance(state, dict) else {"objects": {}, "newest": None}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    tmp = out / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out / STATE_FILE)


def _safe_key(key: str) -> bool:
    parts = key.split("/")
    return parts[0] in KINDS and all(p not in ("", ".", "..") for p in parts) and key.endswith(".ndjson")


def _write_atomic(path: Path, body: bytes | Path) -> None:
    """Write (or copy) to a temporary name beside `path`, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    if isinstance(body, Path):
        shutil.copyfile(body, tmp)
    else:
        tmp.write_bytes(body)
    os.replace(tmp, path)


@dataclass(frozen=True)
class S3Options:
    """Where an `s3://` source is served and as whom. Unset fields fall back to boto3's own chain, as users of
    S3-compatible stores expect: `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, then
    `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or the shared credentials file. For R2 the endpoint is
    `https://<ACCOUNT_ID>.r2.cloudflarestorage.com` and the region `auto`."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


def pull_all(
    source: str,
    out: Path,
    *,
    tenant: str = "fleet",
    admin_token: str | None = None,
    tenant_header: str = "x-tenant-id",
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    s3: S3Options | None = None,
) -> PullResult:
    """Bring `out` up to date with the export at `source` (a runtime's base URL, a local export directory or an
    `s3://bucket/prefix` URL), then verify the chains of every session the new files touch."""
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out)
    state.setdefault("objects", {})
    result = PullResult()
    if source.startswith(("http://", "https://")):
        if not admin_token:
            raise ExportError("pulling from a runtime needs the admin token")
        _pull_http(source, out, state, result, tenant, admin_token, tenant_header, timeout, transport)
    elif source.startswith("s3://"):
        _pull_s3(source, out, state, result, s3 or S3Options(), timeout)
    else:
        _pull_dir(Path(source.removeprefix("file://")), out, state, result)
    paths = [out / k for k in result.fetched]
    result.chains = check_chains(out, paths) if paths else []
    # Merge with what earlier pulls verified: a session the new files touch was verified again, whole.
    try:
        earlier = json.loads((out / CHAINS_FILE).read_text(encoding="utf-8"))["chains"]
    except (OSError, ValueError, KeyError, TypeError):
        earlier = [] if not paths else None
    if earlier is None:
        merged = check_chains(out)  # no earlier results to merge with: verify everything once
    else:
        fresh = {(c.tenant, c.session) for c in result.chains}
        kept = [_chain_of(d) for d in earlier]
        merged = [c for c in kept if (c.tenant, c.session) not in fresh] + result.chains
    save_chains(out, sorted(merged, key=lambda c: (c.tenant, c.session)))
    result.unconverted = _analysis_copy(out, result.fetched)
    return result


def _analysis_copy(out: Path, fetched: list[str]) -> list[str]:
    """The Parquet copy of what was fetched (and of anything an interrupted pull left without one)."""
    try:
        from agentspec.report.engine import write_analysis_copy
    except ImportError:  # DuckDB is the workbench's; without it the review is not available either
        return []
    return write_analysis_copy(out)


def _pull_dir(src: Path, out: Path, state: dict[str, Any], result: PullResult) -> None:
    if not src.is_dir():
        raise ExportError(f"`{src}` is not a directory or a runtime URL")
    if src.resolve() == out.resolve():
        raise ExportError(f"`{src}` is the output directory itself")
    known: dict[str, str] = state["objects"]
    for path in sorted((src / POLICIES_DIR).glob("*.json")):
        if not (out / POLICIES_DIR / path.name).exists():
            _write_atomic(out / POLICIES_DIR / path.name, path)
    for kind in KINDS:
        for path in export_files(src, kind):
            key = path.relative_to(src).as_posix()
            stat = path.stat()
            etag = f"{stat.st_size}:{stat.st_mtime_ns}"
            if known.get(key) == etag:
                result.skipped += 1
                continue
            _write_atomic(out / key, path)
            known[key] = etag
            result.fetched.append(key)
            _save_state(out, state)


def _pull_http(
    url: str,
    out: Path,
    state: dict[str, Any],
    result: PullResult,
    tenant: str,
    token: str,
    tenant_header: str,
    timeout: float,
    transport: httpx.BaseTransport | None,
) -> None:
    headers = {"authorization": f"Bearer {token}", tenant_header: tenant}
    newest = state.get("newest")
    since = ""
    if isinstance(newest, str):
        since = (datetime.fromisoformat(newest.replace("Z", "+00:00")) - _OVERLAP).astimezone(UTC).isoformat()
    known: dict[str, str] = state["objects"]
    try:
        with httpx.Client(base_url=url, timeout=timeout, transport=transport, headers=headers) as client:
            listing = client.get("/v1/exports", params={"since": since} if since else {})
            _check_answer(listing, tenant_header)
            _keep_policy(client, out)
            objects = listing.json().get("objects", [])
            for obj in objects:
                key, etag = str(obj["key"]), str(obj["etag"])
                if not _safe_key(key):
                    raise ExportError(f"`GET /v1/exports` listed an object outside the export layout: `{key}`")
                if known.get(key) == etag:
                    result.skipped += 1
                    continue
                answer = client.get("/v1/exports", params={"key": key})
                _check_answer(answer, tenant_header)
                _write_atomic(out / key, answer.content)
                known[key] = etag
                if newest is None or str(obj["uploaded"]) > newest:
                    newest = str(obj["uploaded"])
                state["newest"] = newest
                result.fetched.append(key)
                _save_state(out, state)
    except httpx.HTTPError as exc:
        raise ExportError(f"cannot reach `{url}`: {exc}") from exc
    _save_state(out, state)


def _keep_policy(client: httpx.Client, out: Path) -> None:
    """Keep the policy the runtime reports, one file per spec hash: a replay checks each decision record against
    the policy of its own `spec_hash`, and the runtime answers only its current one. A runtime that answers no
    policy leaves nothing here (the replay then says which spec hashes it could not check); the pull goes on."""
    answer = client.get("/v1/policy")
    try:
        spec_hash = answer.json()["spec_hash"] if answer.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        spec_hash = None
    name = str(spec_hash).removeprefix("sha256:")
    if re.fullmatch(r"[0-9a-f]{64}", name) and not (out / POLICIES_DIR / f"{name}.json").exists():
        _write_atomic(out / POLICIES_DIR / f"{name}.json", answer.content)


def _pull_s3(
    url: str, out: Path, state: dict[str, Any], result: PullResult, options: S3Options, timeout: float
) -> None:
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ExportError("an `s3://` source needs boto3: pip install 'agentspec[workbench]'") from exc
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ExportError(f"`{url}` names no bucket; write `s3://BUCKET[/PREFIX]`")
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    known: dict[str, str] = state["objects"]
    try:
        session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
        client = session.client(
            "s3",
            endpoint_url=options.endpoint_url,
            config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3}),
        )
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base)
        for page in pages:
            for obj in page.get("Contents", []):
                key = str(obj["Key"])[len(base) :]
                if re.fullmatch(rf"{POLICIES_DIR}/[0-9a-f]{{64}}\.json", key):
                    # A bucket synced from a pulled directory holds its policies too: kept as a directory's are.
                    if not (out / key).exists():
                        _write_atomic(out / key, client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                    continue
                if key.split("/", 1)[0] not in KINDS:
                    continue  # the bucket may hold other things beside the export
                if not _safe_key(key):
                    raise ExportError(f"`{url}` holds an object outside the export layout: `{obj['Key']}`")
                etag = str(obj["ETag"]).strip('"')
                if known.get(key) == etag:
                    result.skipped += 1
                    continue
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                _write_atomic(out / key, body)
                known[key] = etag
                result.fetched.append(key)
                _save_state(out, state)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ExportError(
            f"`{url}`: the store answered {error.get('Code', '?')} ({error.get('Message', exc)})"
        ) from exc
    except BotoCoreError as exc:
        # No credentials, an unreachable endpoint, a bad profile: botocore's own sentence says which.
        raise ExportError(f"cannot read `{url}`: {exc}") from exc
    _save_state(out, state)


def _check_answer(response: httpx.Response, tenant_header: str) -> None:
    if response.status_code == 200:
        return
    detail = answer_detail(response, tenant_header)
    raise ExportError(f"`GET /v1/exports` answered {response.status_code} ({detail})")

"""The fleet export as DuckDB tables: an export root (a local directory, or an `s3://` URL DuckDB's httpfs reads)
in, a connection with one deduplicated table per event kind out (`traces`, `decisions`, `tasks`), read in place
from the Hive layout with `read_json`.

The SQL here names only paths under the root, so the same statements run over the files in R2 (through R2's S3
API and DuckDB's httpfs extension) once a fleet outgrows one machine. Every event is counted once by its id: a
batch the queue delivered twice, or an event sent twice, changes no figure.

The analysis copy: parsing NDJSON is most of a review's time (1.7 GB for a million turns), so `trace pull --all`
also writes each export file's rows, already projected to the columns the analysis reads, as Parquet under
`DIR/.agentspec-analysis/` (same layout, `.parquet`), with the size and mtime of the NDJSON file each came from.
A local export is read from the Parquet file of every NDJSON file unchanged since, and from the NDJSON itself
otherwise (a file edited after the pull, or a directory never pulled): the NDJSON stays the record, the Parquet
is a cache of it, and both give the same rows (the same `_SELECT`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from agentspec.trace.fleet import EXPORT_SCHEMA, KINDS, export_files

# The envelope every export line has; `workflow` and `dt` come from the object's partition path.
_ENVELOPE = "schema: 'INTEGER', kind: 'VARCHAR', id: 'VARCHAR', ts: 'VARCHAR', tenant: 'VARCHAR', "
_ENVELOPE += "session: 'VARCHAR', seq: 'BIGINT'"

# What each kind's `data` holds that the analysis reads, as DuckDB types; other keys are ignored, and a key an
# older runtime did not write reads as NULL.
_DATA = {
    "traces": (
        "STRUCT(region VARCHAR, affinity VARCHAR, model_family VARCHAR, prompt_family VARCHAR, tier VARCHAR, "
        '"gen_ai.response.model" VARCHAR, latency_ms DOUBLE, ttft_ms DOUBLE, '
        '"gen_ai.usage.input_tokens" BIGINT, "gen_ai.usage.output_tokens" BIGINT, '
        '"gen_ai.usage.cache_read.input_tokens" BIGINT, cost_usd DOUBLE, '
        "tools STRUCT(tool VARCHAR, decision VARCHAR, outcome VARCHAR, attempts INTEGER)[], "
        "retry_log STRUCT(kind VARCHAR, target VARCHAR, replay_safe BOOLEAN, performed BOOLEAN)[], "
        'checkpoint STRUCT(prompt_family VARCHAR, ok BOOLEAN, "gen_ai.usage.input_tokens" BIGINT, '
        '"gen_ai.usage.cache_read.input_tokens" BIGINT, cost_usd DOUBLE))'
    ),
    "decisions": "STRUCT(action VARCHAR, decision VARCHAR, rule VARCHAR, intent VARCHAR, spec_hash VARCHAR)",
    "tasks": (
        "STRUCT(task VARCHAR, step VARCHAR, status VARCHAR, attempt INTEGER, ok BOOLEAN, latency_ms DOUBLE, "
        "cost_usd DOUBLE, error VARCHAR)"
    ),
}

# One table per kind, typed columns out of `data`, one row per event id. Costs are exact decimals, so a sum does
# not depend on the order rows arrive in (floating-point sums do, and the review must be deterministic).
_SELECT = {
    "traces": """
        SELECT workflow, dt, tenant, session, seq AS turn,
          data.region AS region, coalesce(data.affinity, session) AS affinity, data.model_family AS model_family,
          data.prompt_family AS prompt_family, data.latency_ms AS latency_ms, data.ttft_ms AS ttft_ms,
          coalesce(data."gen_ai.usage.input_tokens", 0) AS input_tokens,
          coalesce(data."gen_ai.usage.cache_read.input_tokens", 0) AS cached_tokens,
          data.cost_usd::DECIMAL(38, 12) AS cost_usd, data.tools AS tools, data.retry_log AS retry_log,
          data.checkpoint.prompt_family AS checkpoint_family,
          data.checkpoint."gen_ai.usage.input_tokens" AS checkpoint_input_tokens,
          data.checkpoint."gen_ai.usage.cache_read.input_tokens" AS checkpoint_cached_tokens,
          data.checkpoint.cost_usd::DECIMAL(38, 12) AS checkpoint_cost_usd""",
    "decisions": """
        SELECT workflow, dt, tenant, session, seq, data.action AS action, data.decision AS decision,
          data.rule AS rule""",
    "tasks": """
        SELECT workflow, dt, tenant, session AS task, data.step AS step, data.status AS status,
          data.attempt AS attempt, data.ok AS ok, data.latency_ms AS latency_ms,
          data.cost_usd::DECIMAL(38, 12) AS cost_usd""",
}


class ReportInputError(RuntimeError):
    """The export cannot be analysed; the message names the file (or directory) at fault."""


@dataclass(frozen=True)
class Export:
    """An open export: the DuckDB connection holding its tables, and where it was read from."""

    root: str
    con: duckdb.DuckDBPyConnection


def glob_of(root: str, kind: str) -> str:
    """The files of one kind under an export root, as DuckDB globs them (local path or s3:// URL)."""
    return f"{root.rstrip('/')}/{kind}/dt=*/workflow=*/*.ndjson"


def read_sql(root: str, kind: str) -> str:
    """`read_json` over one kind's files in the Hive layout: the statement that also runs over R2."""
    return _read_json("'" + glob_of(root, kind).replace("'", "''") + "'", kind)


def _read_json(files: str, kind: str) -> str:
    """`read_json` of `files` (a quoted glob or a list literal) with the envelope and `kind`'s typed `data`."""
    columns = "{" + _ENVELOPE + f", data: '{_DATA[kind]}'" + "}"
    return (
        f"read_json({files}, format = 'newline_delimited', hive_partitioning = true, filename = true, "
        f"hive_types = {{'dt': 'DATE', 'workflow': 'VARCHAR'}}, columns = {columns})"
    )


def _files_of(root: str, kind: str) -> bool:
    if root.startswith("s3://"):
        return True  # DuckDB lists the bucket; an empty prefix fails in the query and is reported then
    return any(Path(root).glob(f"{kind}/dt=*/workflow=*/*.ndjson"))


_FILE_IN_ERROR = re.compile(r'file "([^"]+)"')


def open_export(root: str | Path) -> Export:
    """Load the export at `root` into an in-memory DuckDB. Raises ReportInputError for a missing directory, an
    export with no traces, a truncated or malformed file and another schema version, naming the file."""
    root_s = str(root)
    if not root_s.startswith("s3://") and not Path(root_s).is_dir():
        raise ReportInputError(f"`{root_s}` is not a directory")
    if not _files_of(root_s, "traces"):
        raise ReportInputError(f"`{root_s}` holds no traces (no `traces/dt=*/workflow=*/*.ndjson` files)")
    con = duckdb.connect(":memory:")
    for kind in _SELECT:
        # The rows, with each row's schema and file kept for the check below. A damaged analysis copy is not the
        # export's fault: then the NDJSON is read instead.
        for use_copy in (True, False):
            try:
                source = _load_rows(con, root_s, kind, use_copy)
                # Each event once by its id. Duplicates are rare (a redelivered batch), so they are counted
                # first: without any, the table is a view over the Parquet copy, read in place by each query
                # (only the columns it names); with some, the deduplicated rows are materialized. Ties between
                # copies of one event are broken by file name: any copy will do, they are the same event.
                dups = con.execute(f"SELECT count(*) - count(DISTINCT id) FROM {source}").fetchone()
                break
            except duckdb.Error as exc:
                if not use_copy or not _has_copy(root_s):
                    raise ReportInputError(_explain(exc, root_s, kind)) from exc
        if dups == (0,):
            con.execute(f"CREATE VIEW {kind} AS SELECT * EXCLUDE (id) FROM {source}")
        else:
            con.execute(
                f"CREATE TABLE {kind} AS SELECT * EXCLUDE (id) FROM {source} "
                "QUALIFY row_number() OVER (PARTITION BY id ORDER BY _file) = 1"
            )
        rows = con.execute(
            f"SELECT _file, _schema FROM {kind} WHERE _schema IS DISTINCT FROM {EXPORT_SCHEMA} LIMIT 1"
        ).fetchall()
        if rows:
            raise ReportInputError(
                f"`{_under(root_s, rows[0][0])}` has export schema {rows[0][1]!r}; "
                f"this agentspec reads schema {EXPORT_SCHEMA}"
            )
    return Export(root_s, con)


def _under(root: str, key: str) -> str:
    return f"{root.rstrip('/')}/{key}"


def _projected(kind: str, source: str, root: str) -> str:
    """A kind's analysis columns, with each event's id, schema and file (its key under `root`, as the analysis
    copy keeps it: one short string per file, not a path per row), out of a `read_json` relation."""
    file = f"substr(filename, {len(_under(root, '')) + 1})"
    return f"{_SELECT[kind].strip()}, id, schema AS _schema, {file} AS _file FROM {source}"


def _sql_list(paths: Iterable[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _has_copy(root: str) -> bool:
    return not root.startswith("s3://") and (Path(root) / ANALYSIS_DIR).is_dir()


def _load_rows(con: duckdb.DuckDBPyConnection, root: str, kind: str, use_copy: bool) -> str:
    """Every event row of one kind (duplicates kept), as a relation named in `con`: the fresh analysis copies as
    they are on disk, and the NDJSON of every other file parsed once into a table (`_<kind>_ndjson`)."""
    ndjson = f"_{kind}_ndjson"
    if root.startswith("s3://"):
        con.execute(f"CREATE OR REPLACE TABLE {ndjson} AS {_projected(kind, read_sql(root, kind), root)}")
        return ndjson
    base = Path(root)
    fresh: list[Path] = []
    stale: list[str] = []
    manifest = _manifest(base) if use_copy else {}
    for path in export_files(base, kind):
        key = path.relative_to(base).as_posix()
        copy = _copy_path(base, key)
        if manifest.get(key) == _stat(path) and copy.is_file():
            fresh.append(copy)
        else:
            stale.append(key)
    parts = []
    if stale or not fresh:  # no file of this kind at all: an empty table of the same shape
        source = _read_json(_sql_list(_under(root, key) for key in stale), kind) if stale else _empty(kind)
        con.execute(f"CREATE OR REPLACE TABLE {ndjson} AS {_projected(kind, source, root)}")
        parts.append(f"SELECT * FROM {ndjson}")
    if fresh:
        parts.append(f"SELECT * FROM read_parquet({_sql_list(str(c) for c in fresh)}, hive_partitioning = false)")
    con.execute(f"CREATE OR REPLACE VIEW _{kind}_rows AS " + " UNION ALL BY NAME ".join(f"({p})" for p in parts))
    return f"_{kind}_rows"


# ── the analysis copy ────────────────────────────────────────────────────────

ANALYSIS_DIR = ".agentspec-analysis"
_MANIFEST = "manifest.json"


def _copy_path(root: Path, key: str) -> Path:
    return root / ANALYSIS_DIR / (key.removesuffix(".ndjson") + ".parquet")


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _manifest(root: Path) -> dict[str, list[int]]:
    try:
        body = json.loads((root / ANALYSIS_DIR / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def write_analysis_copy(root: Path, keys: Iterable[str] | None = None) -> list[str]:
    """Write the Parquet analysis copy of the export files `keys` (paths under `root`; default: every file whose
    copy is missing or older than it). Returns the keys it could not convert (a truncated or foreign file): those
    stay NDJSON-only, and the review names them when it reads them."""
    manifest = _manifest(root)
    if keys is None:
        every = [p.relative_to(root).as_posix() for kind in KINDS for p in export_files(root, kind)]
        keys = [k for k in every if manifest.get(k) != _stat(root / k) or not _copy_path(root, k).is_file()]
    failed: list[str] = []
    con = duckdb.connect(":memory:")
    try:
        for key in keys:
            kind = key.split("/", 1)[0]
            source, copy = root / key, _copy_path(root, key)
            copy.parent.mkdir(parents=True, exist_ok=True)
            tmp = copy.with_name(copy.name + ".tmp")
            stat = _stat(source)  # before reading: a file rewritten meanwhile is then seen as stale
            select = _projected(kind, _read_json(_sql_list([str(source)]), kind), str(root))
            try:
                con.execute(f"COPY ({select}) TO {_sql_list([str(tmp)])[1:-1]} (FORMAT parquet)")
            except duckdb.Error:
                tmp.unlink(missing_ok=True)
                manifest.pop(key, None)
                failed.append(key)
                continue
            os.replace(tmp, copy)
            manifest[key] = stat
    finally:
        con.close()
        _save_manifest(root, manifest)
    return failed


def _save_manifest(root: Path, manifest: dict[str, list[int]]) -> None:
    (root / ANALYSIS_DIR).mkdir(parents=True, exist_ok=True)
    tmp = root / ANALYSIS_DIR / f"{_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, root / ANALYSIS_DIR / _MANIFEST)


def _empty(kind: str) -> str:
    """A zero-row relation with the columns `read_json` gives for `kind` (used when no file of it exists)."""
    return (
        "(SELECT NULL::INTEGER AS schema, NULL::VARCHAR AS kind, NULL::VARCHAR AS id, NULL::VARCHAR AS ts, "
        "NULL::VARCHAR AS tenant, NULL::VARCHAR AS session, NULL::BIGINT AS seq, "
        f"NULL::{_DATA[kind]} AS data, NULL::DATE AS dt, NULL::VARCHAR AS workflow, NULL::VARCHAR AS filename "
        "LIMIT 0)"
    )


def _explain(exc: duckdb.Error, root: str, kind: str) -> str:
    message = str(exc).strip().splitlines()[0].rstrip(". ")
    match = _FILE_IN_ERROR.search(message)
    where = f"`{match.group(1)}`" if match else f"the {kind} files under `{root}`"
    if "Malformed JSON" in message or "unexpected end" in message:
        return f"{where} is not valid NDJSON (a truncated file?): {message}"
    return f"{where} cannot be read as an agentspec export: {message}"

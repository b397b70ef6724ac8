"""`abtest export ID --format csv|jsonl|parquet --out DIR`: one experiment's raw data as files.

Reads the API (the local one by default) a page at a time and writes the guide's four tables,
ab_experiments, ab_variants, ab_assignments and ab_results, with the guide's column names
(``id``, ``experiment_id``, ``variant_id``, ``user_id``, ``metric_name``, ``metric_value``), so
the guide's monitoring SQL runs on them unchanged (docs/export.md). Parquet goes through DuckDB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emulator.report_cli import default_url

FORMATS = ("csv", "jsonl", "parquet")
PAGE = 1000
# Column name -> DuckDB type, per table, in file order.
TABLES: dict[str, dict[str, str]] = {
    "ab_experiments": {
        "id": "BIGINT",
        "name": "VARCHAR",
        "description": "VARCHAR",
        "experiment_type": "VARCHAR",
        "status": "VARCHAR",
        "primary_metric": "VARCHAR",
        "target_percentage": "DOUBLE",
        "min_sample_size": "BIGINT",
        "confidence_level": "DOUBLE",
        "created_at": "TIMESTAMPTZ",
        "started_at": "TIMESTAMPTZ",
        "stopped_at": "TIMESTAMPTZ",
        "winner_variant_id": "BIGINT",
    },
    "ab_variants": {
        "id": "BIGINT",
        "experiment_id": "BIGINT",
        "name": "VARCHAR",
        "description": "VARCHAR",
        "is_control": "BOOLEAN",
        "traffic_allocation": "DOUBLE",
        "config": "VARCHAR",
    },
    "ab_assignments": {
        "experiment_id": "BIGINT",
        "unit": "VARCHAR",
        "user_id": "VARCHAR",
        "session_id": "VARCHAR",
        "variant_id": "BIGINT",
        "assigned_at": "TIMESTAMPTZ",
        "source": "VARCHAR",
    },
    "ab_results": {
        "id": "VARCHAR",
        "experiment_id": "BIGINT",
        "variant_id": "BIGINT",
        "unit": "VARCHAR",
        "user_id": "VARCHAR",
        "session_id": "VARCHAR",
        "metric_name": "VARCHAR",
        "metric_value": "DOUBLE",
        "idempotency_key": "VARCHAR",
        "occurred_at": "TIMESTAMPTZ",
        "recorded_at": "TIMESTAMPTZ",
    },
}


class ApiReader:
    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"x-api-key": api_key} if api_key else {}

    def get(self, path: str, **query: Any) -> Any:
        target = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(target, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise SystemExit(f"GET {path} answered {exc.code}: {detail}") from None

    def pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            query: dict[str, Any] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            page = self.get(path, **query)
            yield from page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                return


def read_tables(reader: ApiReader, experiment_id: int) -> dict[str, list[dict[str, Any]]]:
    base = f"/api/v1/experiments/{experiment_id}"
    experiment = reader.get(base)
    variants = [
        {**v, "experiment_id": experiment_id, "config": json.dumps(v.get("config") or {})}
        for v in experiment["variants"]
    ]
    results = [{"id": r["result_id"], **r} for r in reader.pages(base + "/results", "results")]
    return {
        "ab_experiments": [experiment],
        "ab_variants": variants,
        "ab_assignments": list(reader.pages(base + "/assignments", "assignments")),
        "ab_results": results,
    }


def write_tables(tables: dict[str, list[dict[str, Any]]], fmt: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in tables.items():
        columns = list(TABLES[name])
        shaped = [{c: row.get(c) for c in columns} for row in rows]
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
                writer.writeheader()
                writer.writerows(shaped)
        elif fmt == "jsonl":
            with path.open("w", encoding="utf-8") as handle:
                for row in shaped:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            _write_parquet(name, shaped, path)
        written.append(path)
    return written


def _write_parquet(name: str, rows: list[dict[str, Any]], path: Path) -> None:
    """One table as Parquet with its declared column types: the rows go to DuckDB as JSON
    Lines read with those types (one bulk read, where inserting row by row costs minutes
    for tens of thousands of rows), and DuckDB writes the file."""
    try:
        import duckdb
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise SystemExit("parquet needs DuckDB: pip install 'ab-testing-service[export]'") from None
    types = TABLES[name]
    columns = ", ".join(f"{_sql_text(c)}: {_sql_text(t)}" for c, t in types.items())
    with tempfile.TemporaryDirectory() as folder, duckdb.connect() as db:
        lines = Path(folder) / f"{name}.jsonl"
        with lines.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        source = (
            f"read_json({_sql_text(str(lines))}, format = 'newline_delimited', "
            f"columns = {{{columns}}})"
        )
        db.execute(
            f"COPY (SELECT {', '.join(types)} FROM {source}) "
            f"TO {_sql_text(path.as_posix())} (FORMAT parquet)"
        )


def _sql_text(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("export", help="write an experiment's raw data as files")
    parser.add_argument("experiment_id", type=int, metavar="ID")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", default="export", help="directory (default: ./export)")
    parser.add_argument("--url", default=default_url())
    parser.add_argument("--api-key", default=os.environ.get("AB_LOCAL_API_KEY"))


def run(args: argparse.Namespace) -> int:
    reader = ApiReader(args.url, args.api_key)
    tables = read_tables(reader, args.experiment_id)
    for path in write_tables(tables, args.format, Path(args.out)):
        print(path)
    return 0

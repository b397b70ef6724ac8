"""`abtest export` over the local API, and the guide's monitoring SQL run unchanged in DuckDB."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import ROOT, guide_experiment
from tests.e2e.conftest import LocalApi

pytestmark = pytest.mark.e2e
TABLES = ("ab_experiments", "ab_variants", "ab_assignments", "ab_results")


def guide_queries() -> tuple[str, str]:
    """The two SQL blocks of the guide's Monitoring section, exactly as written."""
    guide = (ROOT / "docs" / "ab-testing-guide.md").read_text()
    monitoring = guide[guide.index("## Monitoring") : guide.index("## Troubleshooting")]
    progress, performance = re.findall(r"```sql\n(.*?)```", monitoring, re.S)
    return progress, performance


def populate(api: LocalApi) -> None:
    """Experiment 1 running: 30 users, 2 results each (resolution_rate and satisfaction)."""
    assert api.call("POST", "/api/v1/experiments", guide_experiment())[0] == 201
    assert api.call("POST", "/api/v1/experiments/1/start")[0] == 200
    for user in range(1, 31):
        api.call("POST", "/api/v1/experiments/get-variant", {"experiment_id": 1, "user_id": user})
        for metric, value in (("resolution_rate", user % 3 == 0), ("satisfaction_score", user % 5)):
            body = {
                "experiment_id": 1,
                "user_id": user,
                "metric_name": metric,
                "metric_value": int(value),
            }
            assert api.call("POST", "/api/v1/experiments/record-result", body)[0] == 201


def export(api: LocalApi, fmt: str, out: Path) -> None:
    command = [sys.executable, "-m", "emulator", "export", "1", "--format", fmt, "--out", str(out)]
    done = subprocess.run(
        [*command, "--url", api.url], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert sorted(Path(p).name for p in done.stdout.split()) == sorted(f"{t}.{fmt}" for t in TABLES)


def views(db: Any, out: Path, fmt: str) -> None:
    reader = {"csv": "read_csv_auto", "jsonl": "read_json_auto", "parquet": "read_parquet"}[fmt]
    for table in TABLES:
        db.execute(f"CREATE VIEW {table} AS SELECT * FROM {reader}('{out / table}.{fmt}')")


def test_the_guides_monitoring_sql_runs_unchanged_on_the_export(tmp_path: Path) -> None:
    # Given a running experiment with results, exported in each format
    api = LocalApi(tmp_path / "state.json").start()
    try:
        populate(api)
        for fmt in ("csv", "jsonl", "parquet"):
            export(api, fmt, tmp_path / fmt)
        _, summary = api.call("GET", "/api/v1/experiments/1/summary")
        _, analysis = api.call("GET", "/api/v1/experiments/1/analyze")
    finally:
        api.stop()
    typed_columns_in_parquet(tmp_path / "parquet")
    progress, performance = guide_queries()
    stats = analysis["metrics"]["resolution_rate"]["variant_stats"]
    by_name = {v["name"]: v for v in summary["variants"]}
    for fmt in ("csv", "jsonl", "parquet"):
        with duckdb.connect() as db:
            views(db, tmp_path / fmt, fmt)
            # When the guide's two queries run as written
            [(name, status, users, joined)] = db.execute(progress).fetchall()
            rows = db.execute(performance).fetchall()
            # Then progress matches /summary: the experiment, its status, its users
            assert (name, status) == (summary["name"], "running")
            assert users == summary["users_assigned"] == 30
            # (the guide joins assignments and results side by side, so its COUNT(r.id) is
            # users x results; counted distinctly it is /summary's results_collected)
            assert joined == summary["users_assigned"] * summary["results_collected"]
            [(distinct,)] = db.execute("SELECT COUNT(DISTINCT id) FROM ab_results").fetchall()
            assert distinct == summary["results_collected"] == 60
            # And variant performance matches /summary's counts and /analyze's means
            assert len(rows) == 2
            for variant_name, avg_metric, sample_size in rows:
                variant = by_name[variant_name]
                assert sample_size == variant["results_by_metric"]["resolution_rate"]
                mean = stats[str(variant["variant_id"])]["mean"]
                assert avg_metric == pytest.approx(mean, rel=1e-12)


def typed_columns_in_parquet(out: Path) -> None:
    """Parquet carries types (docs/export.md): times as TIMESTAMP WITH TIME ZONE, the same
    instants as the CSV's ISO 8601 text; ids as BIGINT, values as DOUBLE."""
    with duckdb.connect() as db:
        views(db, out, "parquet")
        types = {
            (table, column): kind
            for table in TABLES
            for column, kind, *_ in db.execute(f"DESCRIBE {table}").fetchall()
        }
        rows = db.execute("SELECT epoch_ms(recorded_at) FROM ab_results").fetchall()
    stamp = "TIMESTAMP WITH TIME ZONE"
    for table, column in (
        ("ab_experiments", "created_at"),
        ("ab_experiments", "started_at"),
        ("ab_assignments", "assigned_at"),
        ("ab_results", "occurred_at"),
        ("ab_results", "recorded_at"),
    ):
        assert types[(table, column)] == stamp, (table, column)
    assert types[("ab_results", "metric_value")] == "DOUBLE"
    assert types[("ab_results", "experiment_id")] == types[("ab_variants", "id")] == "BIGINT"
    assert types[("ab_variants", "is_control")] == "BOOLEAN"
    with (out.parent / "csv" / "ab_results.csv").open() as handle:
        texts = sorted(row["recorded_at"] for row in csv.DictReader(handle))
    assert len(rows) == len(texts) == 60
    as_read = sorted(
        datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000 for text in texts
    )
    assert sorted(ms for (ms,) in rows) == as_read

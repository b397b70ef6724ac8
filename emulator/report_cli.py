"""`abtest report ID` and `abtest analyze ID`: the report page and the verdict from a terminal.

Both talk HTTP to the local API (`make run`) or a deployed one: the URL comes from --url or
AB_URL, an API key from --api-key or AB_API_KEY, and --sigv4 signs the request with the AWS
credentials of the environment (the admin plane of a deployment with AuthMode=IAM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


def default_url() -> str:
    """AB_URL, else the local API on AB_PORT (as `abtest serve` and `make run` take it)."""
    port = os.environ.get("AB_PORT", "").strip() or "8000"
    return os.environ.get("AB_URL") or f"http://127.0.0.1:{port}"


def add_commands(commands: Any) -> None:
    """The parser lines of both commands (called from emulator/cli.py)."""
    report = commands.add_parser("report", help="write an experiment's report page (HTML)")
    report.add_argument("experiment_id", type=int)
    report.add_argument("--out", help="file to write (default: experiment-ID-report.html)")
    report.add_argument("--open", action="store_true", help="open the page in a browser")
    _connection(report)
    analyze = commands.add_parser("analyze", help="print an experiment's verdict and metrics")
    analyze.add_argument("experiment_id", type=int)
    analyze.add_argument("--json", action="store_true", help="print the raw JSON answer")
    _connection(analyze)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=default_url())
    parser.add_argument(
        "--api-key",
        dest="key",
        default=os.environ.get("AB_API_KEY") or os.environ.get("AB_LOCAL_ADMIN_KEY") or "",
        help="x-api-key header: the admin key locally (env AB_API_KEY or AB_LOCAL_ADMIN_KEY)",
    )
    parser.add_argument(
        "--sigv4",
        action="store_true",
        default=os.environ.get("AB_SIGV4") == "1",
        help="sign with the environment's AWS credentials (AuthMode=IAM deployments)",
    )
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")


def fetch(args: argparse.Namespace, path: str) -> tuple[bytes, str]:
    """(body, content type) of a GET; exits with the API's message on an error."""
    url = args.url.rstrip("/") + path
    headers = {"x-api-key": args.key} if args.key else {}
    if args.sigv4:
        headers = _signed(url, args.region, headers)
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise SystemExit(f"{url} answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"cannot reach {url}: {exc.reason}") from None


def _signed(url: str, region: str, headers: dict[str, str]) -> dict[str, str]:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise SystemExit("--sigv4 needs AWS credentials in the environment")
    request = AWSRequest(method="GET", url=url, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def report(args: argparse.Namespace) -> int:
    body, _ = fetch(args, f"/api/v1/experiments/{args.experiment_id}/report")
    out = Path(args.out or f"experiment-{args.experiment_id}-report.html")
    out.write_bytes(body)
    print(f"Report written to {out}")
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0


def analyze(args: argparse.Namespace, stream: TextIO = sys.stdout) -> int:
    body, _ = fetch(args, f"/api/v1/experiments/{args.experiment_id}/analyze")
    answer = json.loads(body)
    if args.json:
        print(json.dumps(answer, indent=2), file=stream)
        return 0
    if stream.isatty():
        render_rich(answer, stream)
    else:
        stream.write(render_text(answer))
    return 0


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{value * 100:+.1f}%"
    if isinstance(value, float):
        return "<0.0001" if 0 < value < 0.0001 else f"{value:.4g}"
    return str(value)


HEADERS = ("vs control", "diff", "lift", "interval", "p", "seq p", "significant")


@dataclass(frozen=True)
class MetricTable:
    title: str
    rows: list[list[str]]
    tones: list[str]  # per row: "better", "worse" (significant moves) or "" (no clear move)


@dataclass(frozen=True)
class Verdict:
    """What both renderings print: headline, verdict, warnings, one table per metric."""

    headline: str
    verdict: str
    has_winner: bool
    reason: str
    warnings: list[str]
    tables: list[MetricTable]
    decision: list[str]  # the decision rule's words, as the report page has them


def verdict_of(answer: Mapping[str, Any]) -> Verdict:
    from ab_testing.report_data import (  # the page's words, from the layer
        decision_lines,
        labelled,
        readouts,
    )
    from ab_testing.stats.messages import RELATIVE_CI_UNBOUNDED

    _, lines = decision_lines(answer)
    stats = answer.get("variant_stats") or {}
    names = {vid: f"Variant {vid} ({s.get('name')})" for vid, s in stats.items()}
    winner = answer.get("recommended_winner_id")
    tables = []
    for name, metric in (answer.get("metrics") or {}).items():
        role = "primary" if name == answer.get("primary_metric") else "secondary"
        if metric.get("guardrail"):
            role = "guardrail"
        direction = metric.get("direction")
        rows, tones = [], []
        shown = [
            (labelled(names.get(str(c.get("variant_id")), str(c.get("variant_id"))), tag), r)
            for c in metric.get("comparisons") or []
            for tag, r in readouts(c)
        ]
        for label, c in shown:
            ci = c.get("relative_ci") or [None, None]
            interval = f"{_fmt(ci[0], True)} to {_fmt(ci[1], True)}"
            if c.get("relative_ci_reason") == RELATIVE_CI_UNBOUNDED:
                interval = "unbounded"
            rows.append(
                [
                    label,
                    _fmt(c.get("absolute_difference")),
                    _fmt(c.get("relative_lift"), True),
                    interval,
                    _fmt(c.get("p_value")),
                    _fmt((c.get("sequential") or {}).get("p_value")),
                    "yes" if c.get("is_significant") else "no",
                ]
            )
            moved = c.get("absolute_difference") or 0
            good = moved > 0 if direction == "higher" else moved < 0
            significant = bool(c.get("is_significant")) and moved != 0
            tones.append(("better" if good else "worse") if significant else "")
        tables.append(MetricTable(f"{name} ({role}, {direction} is better)", rows, tones))
    return Verdict(
        headline=f"Experiment {answer.get('experiment_id')}: {answer.get('experiment_name', '')}",
        verdict=f"Recommend {names.get(str(winner))}" if winner is not None else "No winner yet",
        has_winner=winner is not None,
        reason=str(answer.get("recommendation_reason")),
        decision=[f"Decision: {lines[0]}", *[line for line in lines[1:] if line]],
        warnings=[str(w) for w in answer.get("warnings") or []],
        tables=tables,
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table with columns padded to their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines) + "\n"


def render_text(answer: Mapping[str, Any]) -> str:
    """The verdict, the warnings, and one table per metric, as plain text (pipes, files)."""
    v = verdict_of(answer)
    out = [f"{v.headline}\n", "".join(f"{line}\n" for line in v.decision)]
    out.append(f"Primary metric: {v.reason}\n")
    if v.warnings:
        out.append("\nWarnings:\n" + "".join(f"  ! {w}\n" for w in v.warnings))
    for t in v.tables:
        out.append(f"\n{t.title}\n")
        out.append(table(HEADERS, t.rows) if t.rows else "  no comparison yet\n")
    return "".join(out)


def render_rich(answer: Mapping[str, Any], stream: TextIO, width: int | None = None) -> None:
    """The same for a terminal, with rich: significant moves coloured and marked by a word
    (better / worse), so colour is never the only signal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    v = verdict_of(answer)
    console = Console(file=stream, width=width, force_terminal=True, highlight=False)
    console.print(Text(v.headline, style="bold"))
    first, *rest = v.decision
    console.print(Text(first, style="bold green" if v.has_winner else "bold"))
    for line in rest:
        console.print(line, markup=False)
    console.print(f"Primary metric: {v.reason}", markup=False)
    if v.warnings:
        console.print(Text("Warnings:", style="bold yellow"))
        for w in v.warnings:
            console.print(Text(f"  ! {w}", style="yellow"))
    styles = {"better": "green", "worse": "red", "": ""}
    for t in v.tables:
        grid = Table(title=t.title, title_justify="left", show_lines=False)
        for header in (*HEADERS, "move"):
            grid.add_column(header, no_wrap=header != "vs control")
        for row, tone in zip(t.rows, t.tones, strict=True):
            grid.add_row(*row, tone or "-", style=styles[tone])
        if t.rows:
            console.print(grid)
        else:
            console.print(Text(f"{t.title}: no comparison yet"))


def main(args: argparse.Namespace) -> int:
    return report(args) if args.command == "report" else analyze(args)

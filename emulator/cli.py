"""`abtest serve` and `abtest analyze-once`."""

from __future__ import annotations

import argparse
import errno
import gc
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from emulator import export, report_cli, workers
from emulator.durable import StateBusy, state_owner
from emulator.gateway import SCHEDULED_ANALYSIS_PATH
from emulator.journal import JournalError
from emulator.scheduler import to_json
from emulator.service import Backend, LocalService, Settings
from emulator.snapshot import StateFileError
from emulator.template import REPO_ROOT

log = logging.getLogger("emulator")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", default=_env("AB_TEMPLATE"), help=argparse.SUPPRESS)
    parser.add_argument("--project-root", default=_env("AB_PROJECT_ROOT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--state-file",
        default=_env("AB_STATE_FILE"),
        help="JSON file holding the tables' items (default: .local/state.json)",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter (repeatable), e.g. TablePrefix=dev_",
    )
    parser.add_argument(
        "--admin-key",
        default=_env("AB_LOCAL_ADMIN_KEY") or _env("AB_LOCAL_API_KEY"),
        help="x-api-key for the admin plane, standing in for SigV4; it opens every route "
        "(env AB_LOCAL_ADMIN_KEY; --api-key and AB_LOCAL_API_KEY are older names)",
    )
    parser.add_argument("--api-key", dest="admin_key", help=argparse.SUPPRESS)
    parser.add_argument(
        "--data-key",
        default=_env("AB_LOCAL_DATA_KEY"),
        help="x-api-key for the data plane (get-variant, record-result(s)), standing in for "
        "the deployed API key; needs --admin-key (env AB_LOCAL_DATA_KEY)",
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def default_workers() -> int:
    """One process serves the API, another answers DynamoDB: two cores' worth
    (emulator.workers); on one core the two would only take turns, so one process does both."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


def _address_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=_env("AB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("AB_PORT", "8000")))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abtest", description="Local A/B testing API.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the API locally, DynamoDB in-process, every write journaled"
    )
    _address_options(serve)
    serve.add_argument(
        "--schedule-interval",
        type=float,
        default=float(_env("AB_SCHEDULE_INTERVAL", "300")),
        help="seconds between scheduled analyses; 0 disables (default 300)",
    )
    serve.add_argument(
        "--workers",
        type=_count,
        default=_env("AB_WORKERS", str(default_workers())),
        help="processes serving the API beside the one holding DynamoDB; 0 serves it from "
        "that one process (env AB_WORKERS; default 1, or 0 on a one-core machine)",
    )
    _common_options(serve)
    commands.add_parser("worker", help=argparse.SUPPRESS)

    once = commands.add_parser("analyze-once", help="run the scheduled analysis once")
    _address_options(once)
    once.add_argument(
        "--url",
        default=_env("AB_URL"),
        help="the running server (default: the one that owns the state file, else --host/--port)",
    )
    _common_options(once)
    export.add_parser(commands)
    report_cli.add_commands(commands)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    root = Path(args.project_root) if args.project_root else REPO_ROOT
    template = Path(args.template) if args.template else root / "template.yaml"
    return Settings(
        host=args.host,
        port=args.port,
        template=template,
        project_root=root,
        state_file=Path(args.state_file) if args.state_file else None,
        schedule_interval=getattr(args, "schedule_interval", 0.0),
        workers=getattr(args, "workers", 0),
        admin_key=args.admin_key or None,
        data_key=args.data_key or None,
        parameters=dict(args.parameter),
    )


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


STATE_ERRORS = (StateBusy, StateFileError, JournalError)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# The cyclic garbage collector's thresholds while serving (Python's: 700, 10, 10). Each request
# leaves thousands of short-lived objects, the expression trees among them in cycles, while
# moto's stored items only grow: with Python's thresholds the full collections, which scan
# every stored item, took 160 ms each and set the p99. docs/local-store.md has the figures.
GC_THRESHOLDS = (5000, 20, 100)


def serve(settings: Settings) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, saving and stopping", signal.Signals(signum).name)
        stop.set()

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, on_signal)
    gc.set_threshold(*GC_THRESHOLDS)
    service = LocalService(settings)
    try:
        service.start()
    except STATE_ERRORS as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            log.error(
                "cannot start: %s:%d is already in use: stop what listens there, or pass --port",
                settings.host,
                settings.port,
            )
        else:  # the state file, a journal or their folder: unreadable, unwritable, a folder...
            where = exc.filename or settings.state_path
            log.error(
                "cannot start: %s: %s (the state file and its journals need a folder this user "
                "can write, and must be files); nothing was changed",
                where,
                exc.strerror or exc,
            )
        return 1
    gc.collect()  # what loading left in cycles goes now, not into the frozen generation
    gc.freeze()  # the state just loaded and the modules: long-lived, never scanned again
    print(f"API:      {service.url}", flush=True)
    print(f"State:    {settings.state_path} (journal beside it)", flush=True)
    print(f"DynamoDB: {describe_moto(service.backend.dynamo)}", flush=True)
    code = 0
    try:
        while not stop.wait(0.5):
            service.check()
    except workers.WorkersFailed as exc:
        log.error("stopping: %s (the log above says why)", exc)
        code = 1
    finally:
        service.stop()
    log.info("state saved to %s", settings.state_path)
    return code


def _post_to_server(url: str, api_key: str | None) -> str | None:
    """The server's answer, or None when nothing listens at `url`."""
    headers = {"x-api-key": api_key} if api_key else {}
    request = urllib.request.Request(
        url.rstrip("/") + SCHEDULED_ANALYSIS_PATH, data=b"", method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        hint = ""
        if exc.code == 403:
            hint = " (pass the admin key as for make run: --admin-key or AB_LOCAL_ADMIN_KEY)"
        raise SystemExit(f"{url} answered {exc.code}: {detail}{hint}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise


def analyze_once(settings: Settings, url: str) -> int:
    """Ask the server that owns the state file (or listens at `url`); with no server, run
    against the state file, owning it meanwhile so that no server starts behind our back."""
    owner = state_owner(settings.state_path)
    target = url or (owner.url if owner and owner.url else "")
    target = target or f"http://{settings.host}:{settings.port}"
    answer = _post_to_server(target, settings.api_key)
    if answer is not None:
        print(json.dumps(json.loads(answer), indent=2))
        return 0
    if owner is not None:
        log.error("cannot run: %s, and nothing answers at %s", owner, target)
        return 1
    log.info("nothing answers at %s: running the analysis on %s", target, settings.state_path)
    backend = Backend(settings)
    try:
        backend.start()
    except STATE_ERRORS as exc:
        log.error("cannot run: %s", exc)
        return 1
    try:
        result = backend.scheduled_runner().run_once()
    except Exception:
        log.exception("the scheduled analysis failed")
        return 1
    finally:
        backend.stop()
    print(json.dumps(json.loads(to_json(result)), indent=2))
    return 0


def describe_moto(dynamo: Any) -> str:
    """Which moto answers, and how (emulator.moto_shortcuts)."""
    from emulator.moto_shortcuts import moto_version

    way = "moto's own path" if dynamo is None or dynamo.fast is None else "shortcuts checked"
    return f"in-process moto {moto_version()}, {way}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("report", "analyze"):
        return report_cli.main(args)
    if args.command == "export":
        return export.run(args)
    if args.command == "worker":
        _configure_logging()
        gc.set_threshold(*GC_THRESHOLDS)  # the worker collects and freezes once it has loaded
        return workers.run_worker()
    if args.data_key and not args.admin_key:
        parser.error("--data-key needs --admin-key too: the admin plane has its own key")
    _configure_logging()
    settings = settings_from(args)
    if args.command == "serve":
        return serve(settings)
    return analyze_once(settings, args.url)

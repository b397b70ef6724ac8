"""Wire everything together: in-process DynamoDB + state file, functions, schedule, HTTP API."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emulator import iam
from emulator.durable import DurableStore, StateLock
from emulator.dynamo import InProcessDynamo, configure_aws_environment, dynamodb_client
from emulator.gateway import Gateway
from emulator.lambdas import FunctionLoader, add_to_sys_path, apply_environment
from emulator.scheduler import ScheduledRunner
from emulator.server import ServerThread
from emulator.template import (
    REPO_ROOT,
    create_tables,
    function_environment,
    layer_dirs,
    load_template,
    scheduled_functions,
)
from emulator.workers import WorkerPool

log = logging.getLogger("emulator")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    template: Path = REPO_ROOT / "template.yaml"
    project_root: Path = REPO_ROOT
    state_file: Path | None = None  # None: <project root>/.local/state.json
    schedule_interval: float = 300.0
    admin_key: str | None = None  # stands in for SigV4: opens every route
    data_key: str | None = None  # stands in for the API key: opens the data-plane routes
    parameters: dict[str, str] = field(default_factory=dict)
    stage: str = "local"
    client_timeout: float = 30.0  # seconds before a stalled client connection is closed
    # Processes serving the API beside the one holding DynamoDB (emulator.workers); 0: the
    # API is served by this process's threads.
    workers: int = 0

    @property
    def api_key(self) -> str | None:
        """The key this process sends to a running server (the admin key)."""
        return self.admin_key

    @property
    def state_path(self) -> Path:
        return Path(self.state_file or Path(self.project_root) / ".local" / "state.json")

    @property
    def base_dir(self) -> Path:
        """Where the template is: its CodeUri and layer paths start there."""
        return Path(self.template).resolve().parent

    def to_json(self) -> str:
        """These settings for another process (a worker), its paths made absolute."""
        values = asdict(self)
        for name in _PATHS:
            if values[name] is not None:
                values[name] = str(Path(values[name]).resolve())
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        values = json.loads(text)
        for name in _PATHS:
            if values[name] is not None:
                values[name] = Path(values[name])
        return cls(**values)


_PATHS = ("template", "project_root", "state_file")


def prepare_functions(settings: Settings, template: Mapping[str, Any]) -> None:
    """The functions' environment and import paths in this process, before any handler module
    is imported (they create clients at import time)."""
    apply_environment(function_environment(template, settings.parameters))
    layers = [settings.base_dir / uri for uri in layer_dirs(template)]
    add_to_sys_path([*layers, Path(settings.project_root) / "layers" / "ab_testing"])


def scheduled_runner(
    settings: Settings, template: Mapping[str, Any], loader: FunctionLoader
) -> ScheduledRunner:
    return ScheduledRunner(loader, template, scheduled_functions(template, settings.parameters))


def api_gateway(
    settings: Settings,
    template: Mapping[str, Any],
    loader: FunctionLoader,
    scheduled: ScheduledRunner,
) -> Gateway:
    return Gateway(
        template,
        loader,
        scheduled,
        admin_key=settings.admin_key,
        data_key=settings.data_key,
        parameters=settings.parameters,
        stage=settings.stage,
    )


class Backend:
    """In-process DynamoDB with the template's tables, the functions' environment, the state
    file and its journal (see emulator.durable). The environment is in place before any
    handler module is imported.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.template: dict[str, Any] = load_template(settings.template)
        self.tables: dict[str, str] = {}
        self.lock = StateLock(settings.state_path)
        self.dynamo: InProcessDynamo | None = None
        self.store: DurableStore | None = None
        self.loader = FunctionLoader(settings.base_dir)
        self._iam_installed = False
        self._previous_enforcer: iam.Enforcer | None = None

    def start(self) -> None:
        """Raises StateBusy, StateFileError or JournalError when the state cannot be used."""
        self.lock.acquire()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        # Before any handler builds its client: every DynamoDB call a function makes is checked.
        enforcer = iam.Enforcer.from_template(self.template, self.settings.parameters)
        self._previous_enforcer = iam.install(enforcer)
        self._iam_installed = True
        region = configure_aws_environment()
        self.dynamo = InProcessDynamo(region)
        self.dynamo.start()
        prepare_functions(self.settings, self.template)
        self.tables = create_tables(
            dynamodb_client(region), self.template, self.settings.parameters
        )
        self.store = DurableStore(self.settings.state_path, self.dynamo, list(self.tables.values()))
        recovery = self.store.open()
        log.info(
            "loaded %d items from %s, replayed %d journaled writes",
            recovery.items,
            self.settings.state_path,
            recovery.replayed,
        )
        for torn in recovery.torn or []:
            log.warning(
                "%s was cut off by a crash mid-write: that write was never acknowledged, "
                "dropped it",
                torn,
            )

    def serving_at(self, url: str) -> None:
        """Record where the server answers, for `abtest analyze-once`."""
        self.lock.record(url)

    def scheduled_runner(self) -> ScheduledRunner:
        return scheduled_runner(self.settings, self.template, self.loader)

    def stop(self) -> None:
        """Refuse DynamoDB calls, save the state one last time, let go of the state file."""
        try:
            if self.dynamo is not None:
                self.dynamo.stop()  # first: no call may be answered after the final save
            if self.store is not None:
                self.store.close()
                self.store = None
        finally:
            self.dynamo = None
            if self._iam_installed:
                iam.restore(self._previous_enforcer)
                self._iam_installed = False
            self.lock.release()


class LocalService:
    """The whole local API: `start()`, then `url`, then `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = Backend(settings)
        self.scheduled: ScheduledRunner | None = None
        self.http: ServerThread | WorkerPool | None = None

    @property
    def url(self) -> str:
        return self.http.url if self.http else ""

    def start(self) -> None:
        self.backend.start()
        try:
            self.scheduled = self.backend.scheduled_runner()
            self.http = self._http()
            self.http.start()
        except BaseException:
            if isinstance(self.http, WorkerPool):
                self.http.stop()
            self.backend.stop()
            raise
        self.backend.serving_at(self.url)
        self.scheduled.start(self.settings.schedule_interval)

    def _http(self) -> ServerThread | WorkerPool:
        settings = self.settings
        if settings.workers > 0:
            assert self.backend.dynamo is not None
            return WorkerPool(self.backend.dynamo, settings)
        assert self.scheduled is not None
        backend = self.backend
        gateway = api_gateway(settings, backend.template, backend.loader, self.scheduled)
        return ServerThread(settings.host, settings.port, gateway, settings.client_timeout)

    def check(self) -> None:
        """Start again any worker process that died (see emulator.workers)."""
        if isinstance(self.http, WorkerPool):
            self.http.check()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.scheduled is not None:
            self.scheduled.stop()
        self.backend.stop()


def env_default(name: str, default: str) -> str:
    return os.environ.get(name) or default

"""``eunomia worker enrich|rules|seccomp|health``: one stream processor (a faust
worker) in this process, until SIGTERM or SIGINT."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]

StoreOpt = typer.Option("memory", "--store", help="table store: memory (rebuilt from the changelog "
                        "at start) or rocksdb (local files, production)")
DataOpt = typer.Option(None, "--data-dir", help="where RocksDB tables live (default ./<app id>-data)")
WebOpt = typer.Option(None, "--web-port", help="faust's web server on 127.0.0.1 (off by default)")
LogOpt = typer.Option("WARNING", "--loglevel")


def _start(build: Callable[..., Any], *, store: str, data_dir: Path | None, loglevel: str,
           web_port: int | None = None) -> None:
    """Check ``--store`` (here, once for every worker), load the settings, build the
    worker with ``build(settings, **app options)`` and run it."""
    from eunomia.config import load_settings
    from eunomia.errors import ConfigError
    from eunomia.processors.runtime.app import run_worker

    if store not in ("memory", "rocksdb"):
        raise ConfigError(f"--store must be memory or rocksdb, got {store!r}")
    settings = load_settings()
    worker = build(settings, store=f"{store}://", datadir=data_dir, web_port=web_port)
    run_worker(worker.app, settings, loglevel=loglevel)


def rules(rules: list[Path] = typer.Option([], "--rules", help="site rule files or folders, "
                                           "loaded after the default pack"),
          no_pack: bool = typer.Option(False, "--no-pack", help="only the --rules files"),
          store: str = StoreOpt, data_dir: Path | None = DataOpt, loglevel: str = LogOpt) -> None:
    """Evaluate the rules over enriched.events -> alerts and alerts.ocsf."""
    from eunomia.errors import ConfigError
    from eunomia.processors.rules import RuleLoadError
    from eunomia.processors.workers.rules import RulesWorker

    def build(settings: Any, **options: Any) -> Any:
        try:
            return RulesWorker(settings, rule_paths=rules, default_pack=not no_pack, **options)
        except RuleLoadError as exc:
            raise ConfigError(f"rules rejected: {exc}") from None

    _start(build, store=store, data_dir=data_dir, loglevel=loglevel)


def seccomp(store: str = StoreOpt, data_dir: Path | None = DataOpt, web_port: int | None = WebOpt,
            debounce: float = typer.Option(5.0, "--debounce", help="seconds an image's set must "
                                           "stay unchanged before its profile is published"),
            max_wait: float = typer.Option(60.0, "--max-wait", help="publish at the latest this "
                                           "many seconds after the first unpublished growth"),
            learn_period: float = typer.Option(600.0, "--learn-period", help="seconds of event "
                                               "time an image learns before its set freezes"),
            learn_containers: int = typer.Option(3, "--learn-containers", help="containers an "
                                                 "image learns from before its set freezes"),
            freeze: bool = typer.Option(False, "--freeze", help="freeze each set after its first "
                                        "observation: calls outside it only alert"),
            keep_learning: bool = typer.Option(False, "--keep-learning", help="never freeze: "
                                               "calls outside a profile alert and join it"),
            loglevel: str = LogOpt) -> None:
    """Fold enriched syscall counts into per-image seccomp profiles and alerts."""
    from eunomia.processors.workers.seccomp import SeccompWorker

    period: float | None = None if keep_learning else 0.0 if freeze else learn_period
    _start(partial(SeccompWorker, debounce_s=debounce, max_wait_s=max_wait, learn_period_s=period,
                   learn_containers=1 if freeze else learn_containers),
           store=store, data_dir=data_dir, web_port=web_port, loglevel=loglevel)


def enrich(store: str = StoreOpt, data_dir: Path | None = DataOpt, web_port: int | None = WebOpt,
           grace: float = typer.Option(5.0, "--grace", help="seconds of event time to hold events "
                                       "of an unknown cgroup for its container record"),
           loglevel: str = LogOpt) -> None:
    """Join raw events with containers and process lineage -> enriched.events."""
    from eunomia.processors.workers.enrich import EnrichWorker

    _start(partial(EnrichWorker, grace_s=grace), store=store, data_dir=data_dir, web_port=web_port,
           loglevel=loglevel)


def health(store: str = StoreOpt, data_dir: Path | None = DataOpt, web_port: int | None = WebOpt,
           loglevel: str = LogOpt) -> None:
    """Producer gaps and drops (producer.health + raw seq numbers) -> alerts."""
    from eunomia.processors.workers.health import HealthWorker

    _start(HealthWorker, store=store, data_dir=data_dir, web_port=web_port, loglevel=loglevel)


def register(app: typer.Typer, worker_app: typer.Typer) -> None:
    # this order is `eunomia up`'s default start order
    for command in (rules, seccomp, enrich, health):
        worker_app.command(command.__name__)(command)

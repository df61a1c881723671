"""``eunomia worker enrich`` and ``eunomia worker health``: one faust worker each."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

StoreOpt = typer.Option("memory", "--store", help="table store: memory (rebuilt from the changelog "
                        "at start) or rocksdb (local files, production)")
DataOpt = typer.Option(None, "--data-dir", help="where RocksDB tables live (default ./<app id>-data)")
WebOpt = typer.Option(None, "--web-port", help="faust's web server on 127.0.0.1 (off by default)")
LogOpt = typer.Option("WARNING", "--loglevel")


def _store(store: str) -> str:
    from eunomia.errors import ConfigError

    if store not in ("memory", "rocksdb"):
        raise ConfigError(f"--store must be memory or rocksdb, got {store!r}")
    return f"{store}://"


def register(app: typer.Typer, worker_app: typer.Typer) -> None:
    @worker_app.command("enrich")
    def enrich(store: str = StoreOpt, data_dir: Path | None = DataOpt, web_port: int | None = WebOpt,
               grace: float = typer.Option(5.0, "--grace", help="seconds of event time to hold events "
                                           "of an unknown cgroup for its container record"),
               loglevel: str = LogOpt) -> None:
        """Join raw events with containers and process lineage -> enriched.events."""
        from eunomia.config import load_settings
        from eunomia.processors.runtime.app import run_worker
        from eunomia.processors.workers.enrich import build_app

        settings = load_settings()
        run_worker(build_app(settings, store=_store(store), web_port=web_port, datadir=data_dir,
                             grace_s=grace), settings, loglevel=loglevel)

    @worker_app.command("health")
    def health(store: str = StoreOpt, data_dir: Path | None = DataOpt, web_port: int | None = WebOpt,
               loglevel: str = LogOpt) -> None:
        """Producer gaps and drops (producer.health + raw seq numbers) -> alerts."""
        from eunomia.config import load_settings
        from eunomia.processors.runtime.app import run_worker
        from eunomia.processors.workers.health import build_app

        settings = load_settings()
        run_worker(build_app(settings, store=_store(store), web_port=web_port, datadir=data_dir),
                   settings, loglevel=loglevel)

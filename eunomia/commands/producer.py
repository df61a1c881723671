"""``eunomia producer``: the per-host eBPF agent."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer, worker_app: typer.Typer) -> None:
    @app.command("producer")
    def producer(probes: str = typer.Option("", "--probes", help="comma-separated probe groups "
                                            "(process,file,network,priv,syscalls,signal,oom); "
                                            "default from config"),
                 spool_dir: str = typer.Option("", "--spool-dir", help="disk spool directory")) -> None:
        """Capture kernel events with eBPF and publish them to Kafka (needs root or CAP_BPF+CAP_PERFMON)."""
        import logging

        from eunomia.config import load_settings
        from eunomia.producer.agent import Agent

        logging.basicConfig(level=logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        settings = load_settings()
        update: dict = {}
        if probes:
            update["probes"] = [p for p in probes.split(",") if p]
        if spool_dir:
            update["spool_dir"] = spool_dir
        if update:
            ps = settings.producer.model_validate({**settings.producer.model_dump(), **update})
            settings = settings.model_copy(update={"producer": ps})
        raise typer.Exit(Agent(settings).run())

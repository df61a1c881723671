"""``eunomia rules lint|list``."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _duration(ns: int) -> str:
    """A span as rule files write it: the largest unit that divides it (1h, 90s, 500ms)."""
    for unit, size in (("d", 86400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9),
                       ("ms", 10**6)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns / 1e9:g}s"


def register(app: typer.Typer, _worker_app: typer.Typer) -> None:
    rules_app = typer.Typer(no_args_is_help=True, help="Rule files: check and list.")
    app.add_typer(rules_app, name="rules")

    @rules_app.command("lint")
    def lint(files: list[Path] = typer.Argument(..., help="rule files (YAML)"),
             with_pack: bool = typer.Option(True, "--with-pack/--alone",
                                            help="resolve lists and macros of the default pack too")
             ) -> None:
        """Check rule files; every error with file:line:column; exit 1 on any error."""
        from rich.console import Console

        from eunomia.processors.rules import lint_files, pack_files

        for f in files:
            if not f.exists():
                from eunomia.errors import ConfigError

                raise ConfigError(f"no rule file at {f}")
        pack = {str(p) for p in pack_files()} if with_pack else set()
        diags = [d for d in lint_files([*sorted(pack), *files]) if d.file not in pack]
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        for d in diags:
            console.print(d.format(), markup=False)
        errors = sum(1 for d in diags if d.is_error)
        if errors:
            console.print(f"{errors} error(s) in {len(files)} file(s)", markup=False)
            raise typer.Exit(1)
        Console(highlight=False).print(f"ok: {len(files)} file(s), {len(diags)} warning(s)")

    @rules_app.command("list")
    def list_rules(files: list[Path] = typer.Argument(None, help="extra rule files"),
                   pack: bool = typer.Option(True, "--pack/--no-pack", help="include the default pack")
                   ) -> None:
        """The rules that would run: id, level, form, span (a sequence's maxspan, a
        window's timespan), MITRE tags."""
        from rich.console import Console
        from rich.table import Table

        from eunomia.config import load_settings
        from eunomia.processors.workers.rules import load_rules

        ruleset = load_rules(files or [], default_pack=pack)
        default = f"{_duration(load_settings().rules.default_maxspan_ns)} (default)"
        table = Table("id", "name", "level", "form", "span", "tags")
        for r in ruleset.rules:
            span = ("" if r.form == "single" else _duration(r.timespan_ns) if r.form != "sequence"
                    else _duration(r.maxspan_ns) if r.maxspan_ns else default)
            table.add_row(r.id, r.name, r.level, r.form, span, ", ".join(r.tags))
        Console().print(table)

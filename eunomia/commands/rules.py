"""``eunomia rules lint|list``."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


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
        """The rules that would run: id, level, form, MITRE tags."""
        from rich.console import Console
        from rich.table import Table

        from eunomia.processors.workers.rules import load_rules

        ruleset = load_rules(files or [], default_pack=pack)
        table = Table("id", "name", "level", "form", "tags")
        for r in ruleset.rules:
            table.add_row(r.id, r.name, r.level, r.form, ", ".join(r.tags))
        Console().print(table)

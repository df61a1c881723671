"""``eunomia acls plan|apply|check``: each role's least Kafka ACLs and the producers' quotas.

``plan`` prints what the roles need (no broker); ``apply`` makes the brokers' ACLs
on the project's resources equal to it, removing the ones that no longer belong,
and sets the producer quotas; ``check`` reads the brokers' ACLs and says which
configured principal would be refused what. ``apply`` and ``check`` run with the
admin role's credentials.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.console import Console

__all__ = ["register"]

RoleOpt = typer.Option([], "--role", help="only this role (repeatable): producer, enrich, rules, "
                       "seccomp, health, siem, admin")
PrincipalOpt = typer.Option([], "--principal", help="principal of the one --role given, instead of the "
                            "configured ones (repeatable), e.g. User:host-a")


def _selection(settings: object, roles: list[str], principals: list[str]
               ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    from eunomia.errors import ConfigError
    from eunomia.kafka.acls import ROLES, resolve_principals

    for r in roles:
        if r not in ROLES:
            raise ConfigError(f"--role {r}: unknown role (roles: {', '.join(ROLES)})")
    if principals and len(set(roles)) != 1:
        raise ConfigError("--principal needs exactly one --role (the role these principals hold)")
    overrides = {roles[0]: principals} if principals else None
    selected = tuple(dict.fromkeys(roles)) or ROLES
    return selected, resolve_principals(settings, overrides)  # type: ignore[arg-type]


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned columns: whole names, whatever the terminal width, and easy to grep."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])


def register(app: typer.Typer, worker_app: typer.Typer) -> None:
    acls_app = typer.Typer(no_args_is_help=True, help="Roles: their least Kafka ACLs and producer quotas.")
    app.add_typer(acls_app, name="acls")
    console = Console(highlight=False, soft_wrap=True)

    @acls_app.command("plan")
    def plan_cmd(role: list[str] = RoleOpt, principal: list[str] = PrincipalOpt) -> None:
        """Print each role's ACLs and the producer quotas (derived from the configuration)."""
        from eunomia.config import load_settings
        from eunomia.kafka.acls import plan, quotas

        settings = load_settings()
        selected, principals = _selection(settings, role, principal)
        rows = [(a.principal, a.permission, a.operation, a.resource, a.pattern, a.name)
                for a in plan(settings, principals, selected)]
        console.print(_columns(("principal", "permission", "operation", "resource", "pattern", "name"),
                               rows), markup=False)
        if "producer" in selected:
            rows = [(f"user={q.user}", str(q.producer_byte_rate), f"{q.request_percentage:g}")
                    for q in quotas(settings, principals)]
            console.print("\n" + _columns(("quota", "producer_byte_rate", "request_percentage"), rows),
                          markup=False)

    @acls_app.command("apply")
    def apply_cmd(role: list[str] = RoleOpt, principal: list[str] = PrincipalOpt,
                  with_quotas: bool = typer.Option(True, "--quotas/--no-quotas",
                                                   help="set the producer quotas too (needs Java)")
                  ) -> None:
        """Create the missing ACLs, remove the project's ACLs that no longer belong, set quotas."""
        from eunomia.config import load_settings
        from eunomia.kafka.acl_admin import AclAdmin
        from eunomia.kafka.acls import ROLES, changes, plan, quotas

        settings = load_settings()
        selected, principals = _selection(settings, role, principal)
        mine = {p for r in selected for p in principals[r]}
        keep = {p for r in ROLES if r not in selected for p in principals[r]} - mine
        wanted = set(plan(settings, principals, selected))
        admin = AclAdmin(settings)
        admin.require("alter", "changing ACLs")  # before anything is changed
        add, remove = changes(settings, plan(settings, principals), admin.describe(), keep)
        add = [a for a in add if a in wanted]
        admin.delete(remove)
        admin.create(add)
        for a in remove:
            console.print(f"[red]-[/] {a}")
        for a in add:
            console.print(f"[green]+[/] {a}")
        console.print(f"ACLs: {len(add)} added, {len(remove)} removed, "
                      f"{len(wanted) - len(add)} already in place")
        if with_quotas and "producer" in selected:
            from eunomia.kafka.quota_admin import QuotaTool

            tool = QuotaTool(settings)
            current = tool.describe()
            todo = [q for q in quotas(settings, principals)
                    if any(current.get(q.user, {}).get(k) != v for k, v in q.configs().items())]
            for q in todo:
                tool.set(q)
                console.print(f"[green]quota[/] {q.user}: {q.producer_byte_rate} bytes/s, "
                              f"{q.request_percentage:g}% of a request thread")
            console.print(f"quotas: {len(todo)} set, "
                          f"{len(principals['producer']) - len(todo)} already in place")

    @acls_app.command("check")
    def check_cmd(role: list[str] = RoleOpt, principal: list[str] = PrincipalOpt) -> None:
        """Say which configured principal the brokers would refuse what; exit 1 if any."""
        from eunomia.config import load_settings
        from eunomia.kafka.acl_admin import AclAdmin
        from eunomia.kafka.acls import ROLES, refusals

        settings = load_settings()
        selected, principals = _selection(settings, role, principal)
        admin = AclAdmin(settings)
        acls = admin.describe()
        authz = admin.authorizer()
        if not authz.enabled:
            console.print("the brokers run no authorizer: ACLs are not enforced, every client may do "
                          "everything")
        refused = refusals(settings, principals, acls, allow_if_no_acl=authz.allow_if_no_acl,
                           roles=selected)
        me = admin.who
        held = [r for r in ROLES if me in principals[r]]
        console.print(f"this configuration's client: {me} "
                      f"({'role ' + ', '.join(held) if held else 'no role'})", markup=False)
        if not refused:
            console.print(f"every principal of {', '.join(selected)} may do what its role needs")
            return
        rows = [(r.role, r.principal, r.operation, r.resource, r.name) for r in refused]
        console.print(_columns(("role", "principal", "refused", "resource", "name"), rows), markup=False)
        console.print(f"{len(refused)} request(s) would be refused (super users aside): "
                      "`eunomia acls apply` grants them", markup=False)
        raise typer.Exit(1)

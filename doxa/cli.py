"""The `doxa` command: serve, migrate, create-user (intake and classifier commands join here)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Sequence

from doxa.core.config import ConfigError, Settings, load_settings
from doxa.core.context import Context
from doxa.core.db import transaction
from doxa.core.enums import Role
from doxa.core.errors import DomainError
from doxa.core.users import service as users
from doxa.core.users.schemas import UserCreate

Command = Callable[[argparse.Namespace, Settings], int]


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from doxa.main import create_app
    from doxa.migrations import upgrade

    if not args.no_migrate:
        upgrade(settings.database_url)
    print(
        f"DOXA HTTP on http://{settings.http_host}:{settings.http_port} "
        f"(Swagger UI: /docs, ReDoc: /redoc)"
    )
    if settings.smtp_enabled:
        print(
            f"DOXA SMTP on {settings.smtp_host}:{settings.smtp_port} for "
            + ", ".join(box.address for box in settings.support_addresses)
        )
    if settings.doxa_admin_email:
        print(
            f"Log in as {settings.doxa_admin_email} with DOXA_ADMIN_PASSWORD "
            "(Swagger: Authorize, email as username)"
        )
    else:
        print("No admin configured: run `doxa create-user --email you@example.com --role ADMIN`")
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        proxy_headers=False,
    )
    return 0


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from doxa.migrations import upgrade

    upgrade(settings.database_url)
    print("database is at the latest schema")
    return 0


def create_user(args: argparse.Namespace, settings: Settings) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
    data = UserCreate(
        email=args.email, password=password, full_name=args.name, role=Role(args.role)
    )
    context = Context.build(settings)
    with transaction(context.sessions) as db:
        if users.find_by_email(db, data.email) is not None:
            print(f"error: a user with email {data.email} exists", file=sys.stderr)
            return 1
        user = users.add_user(db, context.passwords, data)
        print(f"created {user.role} {user.email} (id {user.id})")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="doxa", description="DOXA support-ticketing backend")
    commands = root.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="run the HTTP API and the SMTP listener")
    p.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    p.set_defaults(run=serve)
    commands.add_parser("migrate", help="upgrade the database schema").set_defaults(run=migrate)
    p = commands.add_parser("create-user", help="create a user (password prompted)")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role], type=str.upper)
    p.add_argument("--name", default=None)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(run=create_user)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        run: Command = args.run
        return run(args, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (DomainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

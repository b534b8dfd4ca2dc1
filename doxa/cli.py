"""The `doxa` command: serve, migrate, create-user, ingest, reprocess, classifier.

Each command imports what it uses when it runs: `doxa --help` and the MTA's `doxa ingest -`
must not pay for the web app or scikit-learn (a second or more to import).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doxa import logs
from doxa.core.enums import Role

if TYPE_CHECKING:
    from pydantic import ValidationError

    from doxa.core.config import Settings
    from doxa.core.triage.data import Example

EX_TEMPFAIL = 75  # sysexits(3): an MTA keeps the message and retries
Command = Callable[[argparse.Namespace, "Settings"], int]


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from doxa import server
    from doxa.migrations import ensure_schema_matches, upgrade

    def migrate() -> None:
        if not args.no_migrate:
            upgrade(settings.database_url)
        ensure_schema_matches(settings.database_url)  # one line (SchemaMismatch) if it differs

    return server.run(settings, migrate=migrate)


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from doxa.migrations import upgrade

    upgrade(settings.database_url)
    print("database is at the latest schema")
    return 0


def create_user(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from doxa.core.context import Context
    from doxa.core.db import transaction
    from doxa.core.users import service as users
    from doxa.core.users.schemas import UserCreate

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin is None or not sys.stdin.isatty():  # getpass would warn, read it unhidden
        print(
            "error: no terminal to ask for the password: run this in a terminal, or give the "
            "password on standard input with --password-stdin",
            file=sys.stderr,
        )
        return 2
    else:
        password = getpass.getpass("Password: ")
    try:
        data = UserCreate(
            email=args.email, password=password, full_name=args.name, role=Role(args.role)
        )
    except ValidationError as invalid:
        print(f"error: {_one_line(invalid)}", file=sys.stderr)
        return 2
    context = Context.build(settings)
    try:
        with transaction(context.sessions) as db:
            if users.find_by_email(db, data.email) is not None:
                print(f"error: a user with email {data.email} exists", file=sys.stderr)
                return 1
            user = users.add_user(db, context.passwords, data)
            print(f"created {user.role} {user.email} (id {user.id})")
    finally:
        context.close()
    return 0


def _one_line(invalid: ValidationError) -> str:
    """The first problem with a new user's fields, and for the password what to choose."""
    from doxa.core.users.schemas import MIN_PASSWORD_LENGTH

    first = invalid.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    problem = str(first["msg"]).removeprefix("Value error, ")
    if field == "password":
        return (
            f"password refused ({problem}): choose one of at least {MIN_PASSWORD_LENGTH} "
            "characters that is not a commonly used password"
        )
    return f"{field}: {problem}"


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    if _piped(args):
        return ingest_stdin(args, settings)
    from doxa.core.context import Context
    from doxa.gateway.files import ingest as ingest_files
    from doxa.gateway.pipeline import build_pipeline

    if args.sender is not None or args.recipient is not None:
        print("error: --sender and --recipient go with `doxa ingest -` only", file=sys.stderr)
        return 2
    context = Context.build(settings)
    to = args.to or settings.support_addresses[0].address
    try:
        report = ingest_files(
            context,
            build_pipeline(settings),
            args.paths,
            to=to,
            dry_run=args.dry_run,
            acknowledge=args.acknowledge,
        )
    finally:
        context.close()
    if report.each:
        print("each message (dry run: the category it would get as a new ticket):")
        for where, outcome in report.each:
            print(f"  {where}: {outcome}")
    _summary("dry run: nothing stored" if args.dry_run else "ingested", report.outcomes)
    if report.notable:
        print("to look at:")
        for where, outcome in report.notable:
            print(f"  {where}: {outcome}")
    return 0


def _piped(args: argparse.Namespace) -> bool:
    return [str(p) for p in args.paths] == ["-"]


def ingest_stdin(args: argparse.Namespace, settings: Settings) -> int:
    """One message from an MTA's pipe transport; exit 0 stored, 65 refused, 75 retry later."""
    from doxa.core.context import Context
    from doxa.gateway import pipe
    from doxa.gateway.pipeline import build_pipeline

    if args.recipient is None or args.sender is None:
        print("error: `doxa ingest -` needs --sender and --recipient", file=sys.stderr)
        return pipe.EX_TEMPFAIL  # a transport set up wrongly: keep the mail until it is fixed
    context = Context.build(settings)
    try:
        result = pipe.deliver(
            context,
            build_pipeline(settings),
            sys.stdin.buffer,
            sender=args.sender,
            recipient=args.recipient,
        )
    finally:
        context.close()
    if result.code != pipe.EX_OK:
        _pipe_line(result.detail)
    return result.code


def reprocess(args: argparse.Namespace, settings: Settings) -> int:
    from doxa.core.context import Context
    from doxa.core.db import transaction
    from doxa.core.intake import service as intake
    from doxa.core.intake.processing import process_event
    from doxa.gateway.pipeline import build_pipeline

    context, pipeline = Context.build(settings), build_pipeline(settings)
    outcomes: Counter[str] = Counter()
    try:
        with transaction(context.sessions) as db:
            failed = intake.failed_ids(db)
        for event_id in failed:
            with transaction(context.sessions) as db:
                pipeline.requeue(db, event_id)
            status = process_event(context.sessions, pipeline, event_id)
            outcomes[status.value if status else "skipped"] += 1
    finally:
        context.close()
    _summary(f"reprocessed {len(failed)} failed events", outcomes)
    return 0 if not outcomes["failed"] else 1


def _examples(args: argparse.Namespace) -> list[Example]:
    from doxa.core.triage.data import read_examples

    return read_examples(
        args.data,
        text_columns=tuple(args.text_columns.split(",")),
        category_column=args.category_column or None,
        priority_column=args.priority_column or None,
    )


def classifier_train(args: argparse.Namespace, settings: Settings) -> int:
    from doxa.core.context import Context
    from doxa.core.db import transaction
    from doxa.core.triage import labels, store
    from doxa.core.triage.training import retrain

    examples = _examples(args)
    context = Context.build(settings)
    try:
        # The file becomes the help desk's training data (replacing an earlier import), so
        # every later retrain, from the API too, learns from it rather than the seed set.
        with transaction(context.sessions) as db:
            stored = store.replace_own_examples(db, examples)
            labels.add_categories(db, _pinned(settings))
        row = retrain(context.sessions, threshold=settings.ai_confidence_threshold)
    finally:
        context.close()
    print(
        f"trained and activated {row.version} on {row.training_size} examples "
        f"({stored} from {args.data} + corrections; the seed set no longer sets "
        "categories)"
    )
    _print_evaluation(row.evaluation)
    return 0


def _pinned(settings: Settings) -> list[str]:
    return [box.category for box in settings.support_addresses if box.category]


def classifier_eval(args: argparse.Namespace, settings: Settings) -> int:
    from doxa.core.context import Context
    from doxa.core.db import transaction
    from doxa.core.triage import store
    from doxa.core.triage.evaluation import evaluate

    examples = _examples(args)
    context = Context.build(settings)
    try:
        with transaction(context.sessions) as db:
            model = store.ensure_model(db, threshold=settings.ai_confidence_threshold)
    finally:
        context.close()
    print(f"model {model.version} on {len(examples)} examples from {args.data}")
    _print_evaluation(evaluate(model, examples, threshold=settings.ai_confidence_threshold))
    return 0


def _print_evaluation(report: Mapping[str, Any]) -> None:
    for field in ("category", "priority"):
        figures = report.get(field)
        if not isinstance(figures, Mapping) or not figures.get("size"):
            continue
        print(f"\n{field}: accuracy {figures['accuracy']:.3f}, macro-F1 {figures['macro_f1']:.3f}")
        width = max([20, *(len(label) for label in figures["per_label"])])
        print(f"  {'label':<{width}} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
        for label, row in figures["per_label"].items():
            print(
                f"  {label:<{width}} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                f"{row['f1']:>6.3f} {row['support']:>8}"
            )
    coverage = report.get("coverage")
    if coverage is not None:
        print(
            f"\nat threshold {report['threshold']}: coverage {coverage:.1%}, "
            f"accuracy on that share {report.get('accuracy_at_threshold') or 0:.3f}"
        )
    for point in report.get("thresholds") or ():
        print(
            f"  at {point['threshold']:.1f}: coverage {point['coverage']:.1%}, "
            f"accuracy {point['accuracy']:.3f}"
        )


def _summary(title: str, outcomes: Counter[str]) -> None:
    print(title)
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:<32} {count:>7}")
    print(f"  {'total':<32} {sum(outcomes.values()):>7}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="doxa", description="DOXA support-ticketing backend")
    root.add_argument("--version", action="version", version=f"doxa {_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="run the HTTP API and the SMTP listener")
    p.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    p.add_argument("--host", dest="http_host", help="HTTP address (default: HTTP_HOST)")
    p.add_argument("--port", dest="http_port", type=int, help="HTTP port (default: HTTP_PORT)")
    p.add_argument("--smtp-port", dest="smtp_port", type=int, help="default: SMTP_PORT")
    p.set_defaults(run=serve)
    commands.add_parser("migrate", help="upgrade the database schema").set_defaults(run=migrate)
    p = commands.add_parser("create-user", help="create a user (password prompted)")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role], type=str.upper)
    p.add_argument("--name", default=None)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(run=create_user)
    p = commands.add_parser("ingest", help="feed .eml files, mbox files or maildirs to intake")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--to", help="mailbox they were sent to (default: the first support address)")
    p.add_argument("--dry-run", action="store_true", help="parse and classify, store nothing")
    p.add_argument(
        "--acknowledge",
        action="store_true",
        help="mail each new ticket's sender an acknowledgment (an archive is old mail: none "
        "by default; `-` is acknowledged as SMTP mail is)",
    )
    p.add_argument("--sender", help="with `-`: the envelope sender (Postfix: ${sender})")
    p.add_argument("--recipient", help="with `-`: the envelope recipient (Postfix: ${recipient})")
    p.set_defaults(run=ingest)
    p = commands.add_parser("reprocess", help="run failed intake events again")
    p.add_argument("--failed", action="store_true", required=True, help="every failed event")
    p.set_defaults(run=reprocess)
    classifier = commands.add_parser("classifier", help="train or evaluate the classifier")
    actions = classifier.add_subparsers(dest="action", required=True)
    verbs: list[tuple[str, Command, str]] = [
        ("train", classifier_train, "make FILE the training data; train a new version"),
        ("eval", classifier_eval, "evaluate the active version on FILE"),
    ]
    for name, run, text in verbs:
        p = actions.add_parser(name, help=text)
        p.add_argument("--data", required=True, type=Path, help="labeled CSV (header) or JSONL")
        p.add_argument("--text-columns", default="subject,body", help="joined as the text")
        p.add_argument("--category-column", default="category", help="'' for none")
        p.add_argument("--priority-column", default="priority", help="'' for none")
        p.set_defaults(run=run)
    return root


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Settings given on the command line (`serve --host/--port/--smtp-port`) win over the
    environment, and are validated the same way."""
    names = ("http_host", "http_port", "smtp_port")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("doxa")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    args = parser().parse_args(argv)
    # Behind an MTA's pipe every failure of ours is temporary: the MTA keeps the mail and retries.
    piped = args.command == "ingest" and _piped(args)
    if piped:  # the MTA copies our output into its log and bounces: only _pipe_line speaks
        with _quiet():
            return _run(args, piped)
    return _run(args, piped)


def _run(args: argparse.Namespace, piped: bool) -> int:
    from doxa.core.config import ConfigError, load_settings
    from doxa.core.errors import DomainError

    try:
        settings = load_settings(**_overrides(args))
        if not piped:
            logs.configure(settings.log_format)
        run: Command = args.run
        return run(args, settings)
    except ConfigError as exc:
        _say(f"configuration error: {exc}", piped)
        return EX_TEMPFAIL if piped else 2
    except (DomainError, ValueError, OSError) as exc:
        _say(f"error: {exc}", piped)
        return EX_TEMPFAIL if piped else 1
    except KeyboardInterrupt:  # Ctrl-C before a command's own handling (migrating, loading)
        return EX_TEMPFAIL if piped else 130
    except Exception as exc:
        if not piped:
            raise
        _pipe_line(f"4.3.0 temporary failure: {type(exc).__name__}")  # never a traceback
        return EX_TEMPFAIL


@contextmanager
def _quiet() -> Iterator[None]:
    """No log line and no warning on the pipe's output (SPEC: nothing on success)."""
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _say(text: str, piped: bool) -> None:
    if piped:
        _pipe_line(text)
    else:
        print(text, file=sys.stderr)


def _pipe_line(text: str) -> None:
    """The pipe's single line on failure, short enough for the MTA's status text."""
    print(" ".join(text.split())[:200], file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

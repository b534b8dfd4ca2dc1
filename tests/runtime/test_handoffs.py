"""Every hand-off between thread, event loop and process is made in doxa/runtime/ (issue 20).

Each module under doxa/ is parsed (not imported) and every use of a hand-off is flagged:
a call that moves work to a thread, another loop or another process, a task started on a
loop, a pool or limiter of threads or processes.
"""

from __future__ import annotations

import ast
from pathlib import Path

DOXA = Path(__file__).resolve().parents[2] / "doxa"

# Attributes that are hand-offs whatever they are called on (`loop.create_task`,
# `anyio.to_thread.run_sync`, `executor.run_in_executor`, ...).
HANDOFF_ATTRIBUTES = {
    "to_thread",
    "from_thread",
    "run_in_executor",
    "call_soon_threadsafe",
    "run_coroutine_threadsafe",
    "create_task",
    "ensure_future",
    "new_event_loop",
    "run_until_complete",
    "ThreadPoolExecutor",
    "ProcessPoolExecutor",
    "CapacityLimiter",
}
# Names that are hand-offs only in their module (`asyncio.run`, not any `run`).
HANDOFF_NAMES = {
    ("asyncio", "run"),
    ("threading", "Thread"),
    ("threading", "Timer"),
}
# Modules whose import alone is a hand-off.
HANDOFF_MODULES = ("multiprocessing", "concurrent.futures")


def handoffs(source: str) -> list[str]:
    """`line: what` for each hand-off in a module's source."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        what: str | None = None
        if isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr in HANDOFF_ATTRIBUTES or (owner, node.attr) in HANDOFF_NAMES:
                what = f"{owner or '…'}.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = {alias.name for alias in node.names}
            if node.module.startswith(HANDOFF_MODULES):
                what = f"from {node.module} import"
            elif hits := sorted(
                name
                for name in names
                if name in HANDOFF_ATTRIBUTES or (node.module, name) in HANDOFF_NAMES
            ):
                what = f"from {node.module} import {', '.join(hits)}"
        elif isinstance(node, ast.Import) and (
            hits := [a.name for a in node.names if a.name.startswith(HANDOFF_MODULES)]
        ):
            what = f"import {', '.join(hits)}"
        if what is not None and isinstance(node, ast.expr | ast.stmt):
            found.append((node.lineno, what))
    return [f"{line}: {what}" for line, what in sorted(found)]


def handoffs_by_module() -> dict[str, list[str]]:
    """Hand-offs outside doxa/runtime/, by path under doxa/."""
    found = {}
    for path in sorted(DOXA.rglob("*.py")):
        name = path.relative_to(DOXA).as_posix()
        if name.startswith("runtime/"):
            continue
        if lines := handoffs(path.read_text(encoding="utf-8")):
            found[name] = lines
    return found


def test_no_handoff_outside_the_runtime_package() -> None:
    assert handoffs_by_module() == {}, "hand-offs belong in doxa/runtime/"


def test_the_scan_sees_each_kind_of_handoff() -> None:
    source = """
import asyncio, threading
import multiprocessing
from anyio import to_thread
from concurrent.futures import ThreadPoolExecutor
asyncio.run(main())
threading.Thread(target=work).start()
loop.call_soon_threadsafe(wake)
asyncio.create_task(job())
anyio.to_thread.run_sync(work)
limiter = anyio.CapacityLimiter(2)
"""
    assert [line.split(": ", 1)[1] for line in handoffs(source)] == [
        "import multiprocessing",
        "from anyio import to_thread",
        "from concurrent.futures import",
        "asyncio.run",
        "threading.Thread",
        "loop.call_soon_threadsafe",
        "asyncio.create_task",
        "anyio.to_thread",
        "anyio.CapacityLimiter",
    ]

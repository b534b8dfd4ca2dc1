"""What a fresh interpreter has imported after running some code: the import-weight tests."""

from __future__ import annotations

import json
import subprocess
import sys


def imported(code: str, heavy: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run `code` in a new interpreter; its output, and the top-level names of the `heavy`
    modules (by prefix) it imported."""
    probe = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules"
        f" if m.startswith({heavy!r})}})))\n"
    )
    command = [sys.executable, "-c", probe]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    *output, names = result.stdout.strip().splitlines()
    return "\n".join(output), list(json.loads(names))

"""Files a user of the project reads: the licence matches the package metadata, and a plain
`make` says what it can do."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class TestLicense:
    def test_license_file_is_the_apache_2_text_pyproject_names(self) -> None:
        declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
        text = (ROOT / "LICENSE").read_text()
        assert declared == "Apache-2.0"
        assert "Apache License" in text and "Version 2.0, January 2004" in text
        assert "END OF TERMS AND CONDITIONS" in text


UV_INSTALL = ".venv/bin/uv pip install --quiet --python .venv/bin/python"


class TestMakefile:
    def test_plain_make_lists_the_targets(self) -> None:
        result = subprocess.run(
            ["make", "--no-print-directory"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        targets = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
        assert {"run", "test", "lint", "typecheck", "migrate", "clean"} <= targets

    def _installs(self, target: str) -> list[str]:
        """The package installs `make TARGET` would run on a fresh clone (-n: nothing runs)."""
        result = subprocess.run(
            ["make", "--no-print-directory", "-n", "-B", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        return [line for line in lines if "pip install" in line and not line.endswith(" uv")]

    def test_make_run_installs_only_what_running_needs(self) -> None:
        assert self._installs("run") == [UV_INSTALL + " -e ."]

    def test_make_test_installs_the_test_and_lint_tools(self) -> None:
        assert self._installs("test") == [UV_INSTALL + " -e '.[dev]'"]

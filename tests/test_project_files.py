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


class TestMakefile:
    def test_plain_make_lists_the_targets(self) -> None:
        result = subprocess.run(
            ["make", "--no-print-directory"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        targets = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
        assert {"run", "test", "lint", "typecheck", "migrate", "clean"} <= targets

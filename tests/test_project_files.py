"""Files a user of the project reads: the licence matches what the package metadata says."""

from __future__ import annotations

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

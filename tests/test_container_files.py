"""The container files keep the promises a deployer relies on (no Docker engine needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Inside a container the listeners must take every interface, or published ports reach nothing.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def _instructions(name: str) -> list[str]:
    """Arguments of every `name` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", joined, re.MULTILINE)]


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


class TestContainerFiles:
    def test_dockerfile_final_user_is_not_root(self) -> None:
        user = _instructions("USER")[-1].split(":")[0]
        assert user not in ("root", "0")

    def test_dockerfile_probes_healthz_and_exposes_both_ports(self) -> None:
        assert any("/healthz" in h for h in _instructions("HEALTHCHECK"))
        assert _instructions("EXPOSE")[-1].split() == ["8000", "2525"]

    def test_dockerfile_migrates_then_serves_on_all_interfaces(self) -> None:
        assert "doxa migrate && exec doxa serve --no-migrate" in _instructions("CMD")[-1]
        env = " ".join(_instructions("ENV"))
        assert f"HTTP_HOST={ALL_INTERFACES}" in env and f"SMTP_HOST={ALL_INTERFACES}" in env

    def test_dockerfile_bakes_in_no_secret(self) -> None:
        env = " ".join(_instructions("ENV") + _instructions("ARG"))
        assert not re.search(r"(SECRET|PASSWORD|SIGNING_KEY|API_KEY)\w*=", env)

    def test_dockerignore_keeps_env_and_venv_out_of_the_image(self) -> None:
        ignored = (ROOT / ".dockerignore").read_text().split()
        assert {".env", ".venv", ".git"} <= set(ignored)

    def test_compose_app_starts_only_after_db_is_healthy(self) -> None:
        services = _compose()["services"]
        assert "pg_isready -U doxa -d doxa" in " ".join(services["db"]["healthcheck"]["test"])
        assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"

    def test_compose_app_reads_env_file_and_overrides_database_url(self) -> None:
        app = _compose()["services"]["app"]
        assert app["env_file"] == ".env"
        assert app["environment"]["DATABASE_URL"] == "postgresql+psycopg://doxa:doxa@db:5432/doxa"
        assert app["environment"]["HTTP_HOST"] == app["environment"]["SMTP_HOST"] == ALL_INTERFACES
        assert app["restart"] == "unless-stopped"

    def test_compose_publishes_http_and_smtp_ports(self) -> None:
        assert set(_compose()["services"]["app"]["ports"]) == {"8000:8000", "2525:2525"}

    def test_compose_database_lives_in_a_named_volume(self) -> None:
        compose = _compose()
        volume = compose["services"]["db"]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"]

    def test_dependencies_are_installed_before_the_code_is_copied(self) -> None:
        build_stage = DOCKERFILE.split("FROM ", 2)[1]
        installs_dependencies = build_stage.index("-r requirements.txt")
        assert build_stage.index("COPY pyproject.toml") < installs_dependencies
        assert installs_dependencies < build_stage.index("COPY . .")
        assert "--no-deps ." in build_stage

    def test_make_env_needs_no_virtual_environment(self, tmp_path: Path) -> None:
        for name in ("Makefile", ".env.example", "scripts/make_env.py"):
            (tmp_path / name).parent.mkdir(exist_ok=True)
            (tmp_path / name).write_text((ROOT / name).read_text())
        done = subprocess.run(["make", "-s", ".env"], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / ".venv").exists()
        assert re.search(r"^JWT_SECRET=\S{32,}$", (tmp_path / ".env").read_text(), re.MULTILINE)

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from doxa.core.config import ConfigError, Mailbox, Settings, load_settings
from doxa.core.webhooks.destinations import Allowed


def settings(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


class TestSettings:
    def test_missing_jwt_secret_outside_dev_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("JWT_SECRET", raising=False)
        with pytest.raises(ConfigError, match=r"^JWT_SECRET: required"):
            settings(doxa_env="prod")

    def test_placeholder_or_short_secret_is_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"^JWT_SECRET"):
            settings(doxa_env="prod", jwt_secret="changeme")

    def test_dev_without_secret_gets_a_random_one_per_process(self) -> None:
        first, second = settings(doxa_env="dev"), settings(doxa_env="dev")
        assert first.jwt_secret and first.jwt_secret != second.jwt_secret

    def test_bad_port_names_the_variable_in_one_line(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HTTP_PORT", "eighty")
        with pytest.raises(ConfigError) as error:
            settings(doxa_env="dev")
        assert str(error.value).startswith("HTTP_PORT:") and "\n" not in str(error.value)

    def test_worker_processes_is_read_by_its_old_name_too(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PARSER_PROCESSES", "0")
        assert load_settings(_env_file=None, doxa_env="dev").worker_processes == 0
        monkeypatch.setenv("WORKER_PROCESSES", "3")  # the new name wins
        assert load_settings(_env_file=None, doxa_env="dev").worker_processes == 3

    def test_support_addresses_pin_categories_and_accept_plus_forms(self) -> None:
        loaded = settings(doxa_env="dev", support_addresses="help@x.org, Billing@X.org=billing")
        assert loaded.support_addresses == (
            Mailbox("help@x.org"),
            Mailbox("billing@x.org", "billing"),
        )
        assert loaded.mailbox("billing+42@x.org") == Mailbox("billing@x.org", "billing")
        assert loaded.mailbox("sales@x.org") is None

    def test_malformed_support_address_is_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"^SUPPORT_ADDRESSES"):
            settings(doxa_env="dev", support_addresses="not an address")

    def test_plain_postgresql_url_uses_psycopg3(self) -> None:
        loaded = settings(doxa_env="dev", database_url="postgresql://u@h/db")
        assert loaded.database_url == "postgresql+psycopg://u@h/db"

    def test_empty_secrets_count_as_unset(self) -> None:
        loaded = settings(doxa_env="dev", jwt_secret="", webhook_secret="  ")
        assert len(loaded.jwt_secret or "") >= 32 and loaded.webhook_secret is None
        with pytest.raises(ConfigError, match=r"^JWT_SECRET: required"):
            settings(doxa_env="prod", jwt_secret="")

    def test_a_bad_webhook_allowed_host_stops_the_start(self) -> None:
        blank = settings(doxa_env="dev", webhook_allowed_hosts=" ")
        assert blank.webhook_allowed_hosts == Allowed()
        listed = settings(doxa_env="dev", webhook_allowed_hosts="hooks.internal, 10.1.0.0/16")
        assert listed.webhook_allowed_hosts.permits("hooks.internal", "10.9.9.9")
        assert listed.webhook_allowed_hosts.permits("other.example", "10.1.2.3")
        with pytest.raises(ConfigError, match=r"^WEBHOOK_ALLOWED_HOSTS: '10\.0\.0\.0/33'"):
            settings(doxa_env="dev", webhook_allowed_hosts="127.0.0.1,10.0.0.0/33")

    def test_env_example_lists_every_setting_with_a_comment(self) -> None:
        example = (Path(__file__).parents[2] / ".env.example").read_text()
        for name in Settings.model_fields:
            assert f"{name.upper()}=" in example, name

    def test_env_example_loads_as_valid_settings(self) -> None:
        path = Path(__file__).parents[2] / ".env.example"
        loaded = load_settings(_env_file=str(path), jwt_secret="x" * 40)
        assert loaded.doxa_env == "prod"

    def test_make_env_writes_a_prod_env_with_a_random_secret(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        root = Path(__file__).parents[2]
        for name in ("JWT_SECRET", "DOXA_ENV"):
            monkeypatch.delenv(name, raising=False)
        for target in ("a.env", "b.env"):
            subprocess.run(
                [
                    sys.executable,
                    str(root / "scripts/make_env.py"),
                    str(root / ".env.example"),
                    str(tmp_path / target),
                ],
                check=True,
                capture_output=True,
            )
        first, second = (load_settings(_env_file=str(tmp_path / t)) for t in ("a.env", "b.env"))
        assert first.doxa_env == "prod" and first.jwt_secret != second.jwt_secret

    def test_forwarded_allow_ips_takes_addresses_and_networks(self) -> None:
        loaded = settings(doxa_env="dev", forwarded_allow_ips="10.0.0.1, 192.168.0.0/16")
        assert [str(n) for n in loaded.forwarded_allow_ips] == ["10.0.0.1/32", "192.168.0.0/16"]
        with pytest.raises(ConfigError, match=r"^FORWARDED_ALLOW_IPS:"):
            settings(doxa_env="dev", forwarded_allow_ips="proxy.example.com")

    def test_cors_origins_are_listed_one_by_one_and_a_wildcard_is_refused(self) -> None:
        loaded = settings(
            doxa_env="dev", cors_allowed_origins="https://App.example.com, http://x:8080"
        )
        assert loaded.cors_allowed_origins == ("https://app.example.com", "http://x:8080")
        for wrong in ("*", "https://app.example.com/path", "app.example.com"):
            with pytest.raises(ConfigError, match=r"^CORS_ALLOWED_ORIGINS:"):
                settings(doxa_env="dev", cors_allowed_origins=wrong)

    def test_public_base_url_must_be_http(self) -> None:
        with pytest.raises(ConfigError, match=r"^PUBLIC_BASE_URL:"):
            settings(doxa_env="dev", public_base_url="javascript:alert(1)")


class TestAcknowledgmentSettings:
    def test_a_missing_template_folder_stops_the_start_in_one_line(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"^ACK_TEMPLATES: .*/none is not a folder$"):
            settings(doxa_env="dev", ack_templates=str(tmp_path / "none"))

    def test_a_template_with_an_unknown_placeholder_stops_the_start(self, tmp_path: Path) -> None:
        (tmp_path / "default.en.txt").write_text("Subject: {reference}\n\nDear {customer}\n")
        with pytest.raises(ConfigError) as error:
            settings(doxa_env="dev", ack_templates=str(tmp_path))
        assert str(error.value).startswith("ACK_TEMPLATES: default.en.txt: unknown placeholder")
        assert "\n" not in str(error.value)

    def test_a_text_for_a_mailbox_that_is_not_ours_stops_the_start(self, tmp_path: Path) -> None:
        (tmp_path / "default.en.txt").write_text("Subject: {reference}\n\nThanks\n")
        (tmp_path / "sales@example.com.en.txt").write_text("Subject: {reference}\n\nThanks\n")
        with pytest.raises(ConfigError, match=r"^ACK_TEMPLATES: sales@example.com has texts"):
            settings(doxa_env="dev", ack_templates=str(tmp_path))

    def test_an_empty_template_folder_setting_means_the_built_in_texts(self) -> None:
        assert settings(doxa_env="dev", ack_templates=" ").ack_templates is None

    @pytest.mark.parametrize("name", ["", "Support\r\nBcc: victim@example.net", "x" * 101])
    def test_a_support_name_that_cannot_be_a_display_name_is_refused(self, name: str) -> None:
        with pytest.raises(ConfigError, match=r"^SUPPORT_NAME: "):
            settings(doxa_env="dev", support_name=name)

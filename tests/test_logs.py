"""LOG_FORMAT: DOXA's lines and Uvicorn's share one format."""

from __future__ import annotations

import json
import logging

import pytest

from doxa import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield
    logs.configure("plain")


class TestLogFormat:
    def test_json_puts_one_object_on_each_line_for_doxa_and_uvicorn(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logs.configure("json")
        logging.getLogger("doxa.core.intake.worker").info("intake event %s: %s", 7, "followup")
        logging.getLogger("uvicorn.access").info("GET /healthz 200")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(line["logger"], line["message"]) for line in lines] == [
            ("doxa.core.intake.worker", "intake event 7: followup"),
            ("uvicorn.access", "GET /healthz 200"),
        ]
        assert all(line["level"] == "INFO" and line["time"].endswith("+00:00") for line in lines)

    def test_plain_is_the_default_and_quiets_chatty_libraries(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logs.configure()
        logging.getLogger("mail.log").info("every SMTP command")
        logging.getLogger("uvicorn.error").info("Started server process")
        err = capsys.readouterr().err
        assert "every SMTP command" not in err
        assert " INFO uvicorn.error: Started server process" in err

    def test_a_bad_value_stops_the_start_naming_the_variable(self) -> None:
        from doxa.core.config import ConfigError, load_settings

        with pytest.raises(ConfigError, match="LOG_FORMAT"):
            load_settings(doxa_env="dev", log_format="xml", _env_file=None)

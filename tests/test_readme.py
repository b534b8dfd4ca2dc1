"""The README's curl quick start, run as written against a real `doxa serve`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.relays import free_port

ROOT = Path(__file__).resolve().parents[1]
DOXA = str(Path(sys.executable).with_name("doxa"))


def steps(heading: str) -> list[str]:
    """The first shell block under `heading`, cut into its numbered steps."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading) :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return re.split(r"\n(?=# \d\. )", block.group(1).strip())


def quick_start() -> list[str]:
    return steps("## Quick start with curl")


def walkthrough() -> list[str]:
    return steps("## Teams, rules and service levels with curl")


def answers(output: str) -> list[Any]:
    """The JSON documents curl printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(output.strip()):
        document, at = decoder.raw_decode(output, at)
        found.append(document)
    return found


class Server:
    def __init__(self, folder: Path) -> None:
        self.folder, self.http, self.smtp = folder, free_port(), free_port()
        # As `make run` does: a .env with fresh secrets, then `doxa serve` in that folder.
        subprocess.run(
            [sys.executable, str(ROOT / "scripts/make_env.py"), str(ROOT / ".env.example"), ".env"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        self.env = {**os.environ, "BCRYPT_ROUNDS": "4", "PARSER_PROCESSES": "0"}
        for name in ("DATABASE_URL", "DOXA_ENV", "JWT_SECRET", "SUPPORT_ADDRESSES"):
            self.env.pop(name, None)  # .env decides, as for a newcomer

    def run(self, script: str) -> str:
        script = script.replace(":8000", f":{self.http}").replace(":2525", f":{self.smtp}")
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def wait_until_classified(self, ticket_id: int, timeout: float = 60) -> None:
        """The mail is processed and classified in the background, a moment after its 250."""
        self.wait_for(ticket_id, lambda ticket: ticket["classification_state"] == "done", timeout)

    def wait_for(
        self, ticket_id: int, done: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> None:
        """Until the ticket, as the admin reads it, is `done`."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http}/api/v1"
        password = re.search(
            r"^DOXA_ADMIN_PASSWORD=(.*)$", (self.folder / ".env").read_text(), re.MULTILINE
        )
        assert password is not None
        login = {"username": "admin@example.com", "password": password.group(1)}
        token = httpx.post(f"{url}/auth/login", data=login).json()["access_token"]
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
            while time.monotonic() < deadline:
                response = http.get(f"{url}/tickets/{ticket_id}")
                if response.status_code == 200 and done(response.json()):
                    return
                time.sleep(0.05)
        raise AssertionError(f"ticket {ticket_id} not as wanted within {timeout} s")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("the quick start needs curl and bash")
    server = Server(tmp_path)
    command = [DOXA, "serve", "--port", str(server.http), "--smtp-port", str(server.smtp)]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=server.env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        # One client: `httpx.get` makes a client (and its TLS context, ~50 ms) every try.
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http}") as http:
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "doxa serve did not get ready"
                time.sleep(0.05)
        yield server
    finally:
        process.kill()  # how it stops is tests/test_server.py's point, not the README's
        process.wait(timeout=30)


class TestQuickStart:
    def test_every_step_works_as_written(self, server: Server) -> None:
        mail, login, triage, read, reply, client = quick_start()
        assert server.run(mail) == ""
        server.wait_until_classified(1)
        # One shell from the login on: the steps share $TOKEN and $AUTH, as in a terminal.
        out = answers(server.run("\n".join([login, triage, read, reply, client])))
        queue, ticket, conversation, answer, filed, user, opened = out
        assert [t["subject"] for t in queue["items"]] == ["Help"]
        assert ticket["requester"]["email"] == "ann@example.org"
        assert conversation["items"][0]["author"]["full_name"] == "Ann Lee"
        assert answer["direction"] == "out" and answer["delivery_state"] == "not_sent"
        assert (filed["category"], filed["status"], filed["needs_triage"]) == (
            "technical",
            "pending",
            False,
        )
        assert user["role"] == "CLIENT"
        assert opened["requester"]["email"] == "bob@example.org" and opened["channel"] == "api"

    def test_a_client_cannot_read_another_requesters_ticket(self, server: Server) -> None:
        mail, login, *_, client = quick_start()
        server.run(mail)
        server.wait_until_classified(1)
        peek = 'curl -sS -H "Authorization: Bearer $BOB" http://127.0.0.1:8000/api/v1/tickets/1'
        out = answers(server.run("\n".join([login, client, peek])))
        assert out[-1]["status"] == 404


class TestTeamsRulesAndServiceLevels:
    def test_every_step_works_as_written(self, server: Server) -> None:
        agents, calendar, team, policy, rule, mail, listing, history = walkthrough()
        # One shell for the set-up (the steps share $AUTH and the ids); it also prints the ids.
        shown = 'echo "{\\"agents\\": [$MARIA, $JOE], \\"team\\": $TEAM}"'
        made = answers(server.run("\n".join([agents, calendar, team, policy, rule, shown])))
        made_policy, made_rule, ids = made
        assert made_policy["calendar_id"] is not None and made_rule["stop"] is False
        assert server.run(mail) == ""
        # Placed in the team by its mailbox, the ticket may be assigned before the rules run
        # (after its classification): "a moment later" is once both are done (or 60 s passed).
        server.wait_for(1, lambda t: t["assignee_id"] is not None and t["priority"] == "urgent")
        again = f"{agents.splitlines()[0]}\n{quick_start()[1]}\nTEAM={ids['team']}"
        page, events = answers(server.run("\n".join([again, listing, history])))
        [ticket] = page["items"]
        assert (ticket["team"]["name"], ticket["priority"]) == ("Billing", "urgent")
        assert ticket["assignee_id"] == ids["agents"][0]  # round robin starts with Maria
        assert ticket["sla"]["policy_id"] == made_policy["id"]
        assert ticket["sla"]["first_response_due_at"] is not None
        by_rule = [e for e in events["items"] if e["actor"]["type"] == "rule"]
        assert by_rule[0]["actor"]["name"] == "Double charges are urgent"
        assert by_rule[0]["data"]["changes"]["priority"][1] == "urgent"
        assigned = [e for e in events["items"] if e["type"] == "ticket.assigned"]
        assert assigned[0]["actor"]["type"] == "system"

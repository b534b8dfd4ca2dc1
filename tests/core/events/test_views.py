"""The feed's cursor and the stream's per-reader pick."""

from __future__ import annotations

import pytest

from doxa.core.enums import Role
from doxa.core.errors import InvalidInput
from doxa.core.events import views
from doxa.core.events.feed import Position


def test_a_cursor_names_its_place_and_nothing_else_passes() -> None:
    place = Position(8_000_000_123, 42)
    assert views.decode_cursor(views.encode_cursor(place)) == place
    for forged in ("aWQ6NDI", "ZmVlZDp4OjQy", "%%%", ""):
        with pytest.raises(InvalidInput):
            views.decode_cursor(forged)


def test_each_reader_picks_its_view() -> None:
    def event(kind: str, *, public: bool = True, requester: int | None = 7) -> views.Rendered:
        return views.Rendered(Position(0, 1), 1, kind, 3, requester, public, "staff", "client")

    assert event("ticket.created").for_reader(Role.CLIENT, 7) == "client"
    assert event("ticket.created").for_reader(Role.CLIENT, 8) is None
    assert event("message.created", public=False).for_reader(Role.CLIENT, 7) is None
    assert event("intake.held").for_reader(Role.AGENT, 1) is None
    assert event("intake.held").for_reader(Role.ADMIN, 1) == "staff"
    assert event("message.created", public=False).for_reader(Role.AGENT, 1) == "staff"

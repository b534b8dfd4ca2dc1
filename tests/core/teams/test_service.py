"""The service half of teams' RBAC: a caller past the REST edge is refused by role too."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from doxa.core.context import Context
from doxa.core.enums import Role
from doxa.core.errors import PermissionDenied
from doxa.core.teams import service as teams
from doxa.core.teams.schemas import TeamCreate, TeamUpdate
from doxa.core.users.models import User
from tests.conftest import MakeUser


def _user(db: Session, make_user: MakeUser, role: Role) -> User:
    user = db.get(User, make_user(role).id)
    assert user is not None
    return user


class TestTeamRoles:
    def test_an_agent_reads_but_never_writes(
        self, db: Session, clean: Context, make_user: MakeUser
    ) -> None:
        admin, agent = _user(db, make_user, Role.ADMIN), _user(db, make_user, Role.AGENT)
        team = teams.create_team(
            db, TeamCreate(name="Billing"), actor=admin, settings=clean.settings
        )
        assert teams.get_team(db, team.id, actor=agent) == team
        with pytest.raises(PermissionDenied):
            teams.create_team(db, TeamCreate(name="Sales"), actor=agent, settings=clean.settings)
        with pytest.raises(PermissionDenied):
            teams.update_team(db, team.id, TeamUpdate(), actor=agent, settings=clean.settings)
        with pytest.raises(PermissionDenied):
            teams.delete_team(db, team.id, actor=agent)

    def test_a_client_reads_nothing(self, db: Session, make_user: MakeUser) -> None:
        client = _user(db, make_user, Role.CLIENT)
        with pytest.raises(PermissionDenied):
            teams.list_teams(db, actor=client, cursor=None, limit=10)

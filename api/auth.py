"""The bearer token that guards the operations endpoints (ADMIN_TOKEN; unset refuses everyone)."""

import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SettingsDep
from api.problems import ApiProblem

_bearer = HTTPBearer(scheme_name="AdminToken", auto_error=False, description="ADMIN_TOKEN of the server")


async def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Let the request through only with `Authorization: Bearer $ADMIN_TOKEN`."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    given = credentials.credentials if credentials else None
    if not expected or not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise ApiProblem(
            401,
            "UNAUTHORIZED",
            "this endpoint needs Authorization: Bearer <ADMIN_TOKEN>"
            + ("" if expected else "; ADMIN_TOKEN is not set, so it refuses every request"),
            headers={"WWW-Authenticate": "Bearer"},
        )

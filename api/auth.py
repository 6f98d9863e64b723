"""The bearer tokens that guard the operations endpoints (ADMIN_TOKEN; unset refuses everyone) and the API's
/metrics (METRICS_TOKEN; unset lets everyone scrape)."""

import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SettingsDep
from api.problems import ApiProblem

_bearer = HTTPBearer(scheme_name="AdminToken", auto_error=False, description="ADMIN_TOKEN of the server")
_metrics_bearer = HTTPBearer(
    scheme_name="MetricsToken", auto_error=False, description="METRICS_TOKEN of the server, when it is set"
)


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


async def require_metrics_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)]
) -> None:
    """With METRICS_TOKEN set, let the request through only with `Authorization: Bearer $METRICS_TOKEN`."""
    if settings.metrics_token is None:
        return
    expected = settings.metrics_token.get_secret_value()
    given = credentials.credentials if credentials else None
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise ApiProblem(
            401,
            "UNAUTHORIZED",
            "METRICS_TOKEN is set: scrape with Authorization: Bearer <METRICS_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )

"""The circuit breaker in front of a platform, kept in PostgreSQL so every worker and the CLI see one state.

CLOSED: events are delivered. When the platform has failed `failures_to_open` times in a row (no
answer, 5xx, 429... for every event lately, across all workers) the breaker OPENs: claims stop, the
failures do not count against the events' budgets (they are HELD), and one probe at a time, across
all workers, tests the platform every `probe_every_seconds`. Any answer of the platform closes it,
and every event waiting out a backoff becomes due at once, so the backlog drains without delay.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.tables import relay_breakers


@dataclass(frozen=True)
class BreakerRule:
    """When the breaker opens, and how often it probes while open."""

    failures_to_open: int
    probe_every_seconds: float


@dataclass(frozen=True)
class Breaker:
    """A platform's breaker as stored."""

    platform: str
    state: str
    failures_in_a_row: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_failure: str | None
    last_failure_at: datetime | None
    last_success_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state == "OPEN"

    def describe(self) -> str:
        """The state in words, for logs, the CLI and the Web UI."""
        if not self.is_open:
            failing = f" ({self.failures_in_a_row} failures in a row)" if self.failures_in_a_row else ""
            return f"breaker CLOSED: delivering to {self.platform}{failing}"
        since = self.opened_at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.opened_at else "?"
        return (
            f"breaker OPEN since {since}: {self.platform} failed {self.failures_in_a_row} times in a row "
            f"(last: {self.last_failure or '?'}); deliveries held, one probe at a time"
        )


_ENSURE = text("INSERT INTO relay_breakers (platform) VALUES (:platform) ON CONFLICT (platform) DO NOTHING")

# One statement per recorded batch. The row lock (FOR UPDATE) orders concurrent batches, so counts
# add up and exactly one batch sees the breaker close; that batch also makes every event in backoff
# due now. A healthy batch on a healthy breaker matches nothing and writes nothing.
_NOTE_ANSWERS = text(
    """
    WITH before AS (
        SELECT platform, state, failures_in_a_row FROM relay_breakers WHERE platform = :platform FOR UPDATE
    ), after AS (
        UPDATE relay_breakers AS breaker SET
            failures_in_a_row = CASE WHEN :answered > 0 THEN 0 ELSE before.failures_in_a_row + :failed END,
            state = CASE WHEN :answered > 0 THEN 'CLOSED'
                         WHEN before.failures_in_a_row + :failed >= :failures_to_open THEN 'OPEN'
                         ELSE before.state END,
            opened_at = CASE WHEN :answered > 0 THEN NULL
                             WHEN before.state = 'OPEN' THEN breaker.opened_at
                             WHEN before.failures_in_a_row + :failed >= :failures_to_open THEN now()
                             ELSE NULL END,
            next_probe_at = CASE WHEN :answered > 0 THEN NULL
                                 WHEN :failed > 0 THEN now() + make_interval(secs => :probe_every)
                                 ELSE breaker.next_probe_at END,
            probe_token = CASE WHEN breaker.probe_token = CAST(:probe_token AS uuid) THEN NULL
                               ELSE breaker.probe_token END,
            probe_expires_at = CASE WHEN breaker.probe_token = CAST(:probe_token AS uuid) THEN NULL
                                    ELSE breaker.probe_expires_at END,
            last_failure = CASE WHEN :failed > 0 THEN :last_failure ELSE breaker.last_failure END,
            last_failure_at = CASE WHEN :failed > 0 THEN now() ELSE breaker.last_failure_at END,
            last_success_at = CASE WHEN :answered > 0 THEN now() ELSE breaker.last_success_at END,
            updated_at = now()
        FROM before
        WHERE breaker.platform = before.platform
          AND (:failed > 0 OR before.state <> 'CLOSED' OR before.failures_in_a_row > 0
               OR breaker.probe_token = CAST(:probe_token AS uuid))
        RETURNING breaker.state, before.state AS was
    ), drained AS (
        UPDATE order_events SET next_attempt_at = now()
        WHERE status = 'PENDING' AND next_attempt_at > now()
          AND EXISTS (SELECT FROM after WHERE after.was = 'OPEN' AND after.state = 'CLOSED')
    )
    SELECT coalesce((SELECT state FROM after), (SELECT state FROM before), 'CLOSED') AS state,
           (SELECT was FROM after) AS was
    """
)

_TAKE_PROBE = text(
    """
    UPDATE relay_breakers SET probe_token = :token, probe_expires_at = now() + make_interval(secs => :hold)
    WHERE platform = :platform AND state = 'OPEN' AND coalesce(next_probe_at, now()) <= now()
      AND (probe_token IS NULL OR probe_expires_at < now())
    RETURNING platform
    """
)

_RELEASE_PROBE = text(
    """
    UPDATE relay_breakers
    SET probe_token = NULL, probe_expires_at = NULL, next_probe_at = now() + make_interval(secs => :probe_every)
    WHERE platform = :platform AND probe_token = :token
    """
)

_COLUMNS = [relay_breakers.c[name] for name in Breaker.__dataclass_fields__]


@dataclass(frozen=True)
class BreakerChange:
    """The breaker after a batch's answers were noted; `closed_now` when this batch closed it."""

    state: str
    closed_now: bool
    opened_now: bool

    @property
    def is_open(self) -> bool:
        return self.state == "OPEN"


async def ensure_breaker(engine: AsyncEngine, platform: str) -> None:
    """Create the platform's breaker, CLOSED, unless it exists."""
    async with autocommit_connection(engine) as connection:
        await connection.execute(_ENSURE, {"platform": platform})


async def note_answers(
    engine: AsyncEngine,
    platform: str,
    rule: BreakerRule,
    *,
    answered: int,
    failed: int,
    last_failure: str | None = None,
    probe_token: uuid.UUID | None = None,
) -> BreakerChange:
    """Count a batch's answers (`answered`: the platform judged the event) and platform failures; the new state."""
    async with autocommit_connection(engine) as connection:
        row = (
            await connection.execute(
                _NOTE_ANSWERS,
                {
                    "platform": platform,
                    "answered": answered,
                    "failed": failed,
                    "failures_to_open": rule.failures_to_open,
                    "probe_every": rule.probe_every_seconds,
                    "last_failure": last_failure,
                    "probe_token": probe_token,
                },
            )
        ).one()
    return BreakerChange(
        row.state,
        closed_now=row.was == "OPEN" and row.state == "CLOSED",
        opened_now=row.was == "CLOSED" and row.state == "OPEN",
    )


async def take_probe(engine: AsyncEngine, platform: str, token: uuid.UUID, hold_seconds: float) -> bool:
    """Become the one prober of an open breaker whose next probe is due; False if not open, not due or taken."""
    async with autocommit_connection(engine) as connection:
        taken = await connection.execute(_TAKE_PROBE, {"platform": platform, "token": token, "hold": hold_seconds})
        return taken.first() is not None


async def release_probe(engine: AsyncEngine, platform: str, token: uuid.UUID, rule: BreakerRule) -> None:
    """Give up a probe that found nothing to send: the next one is due after the probe interval."""
    async with autocommit_connection(engine) as connection:
        await connection.execute(
            _RELEASE_PROBE, {"platform": platform, "token": token, "probe_every": rule.probe_every_seconds}
        )


async def breaker_of(engine: AsyncEngine, platform: str) -> Breaker | None:
    """The platform's breaker, if it has one."""
    async with autocommit_connection(engine) as connection:
        row = (await connection.execute(select(*_COLUMNS).where(relay_breakers.c.platform == platform))).first()
    return None if row is None else Breaker(**row._mapping)


async def all_breakers(engine: AsyncEngine) -> list[Breaker]:
    """Every platform's breaker, by platform."""
    async with autocommit_connection(engine) as connection:
        rows = await connection.execute(select(*_COLUMNS).order_by(relay_breakers.c.platform))
        return [Breaker(**row._mapping) for row in rows]

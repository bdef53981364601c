"""The complaint figures of a period, over the tickets filed in it (read through the index on
filing time), and the backlog as it stands (through the partial index of open tickets)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import invalid_field
from chassis.wellknown import duration_to_proto, timestamp_to_proto
from crm.complaints.v1 import complaint_service_pb2
from services.complaints import mapping
from services.complaints.lifecycle import OPEN_STATES
from services.complaints.resource_names import DEPARTMENT

DEFAULT_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class ComplaintFigures:
    """The figures of a period."""

    start: datetime
    end: datetime
    received: list[tuple[str, str, int]]
    resolved: int
    first_response_compliance: float
    resolution_compliance: float
    median_resolution: timedelta
    p90_resolution: timedelta
    first_contact_resolution_rate: float
    reopen_rate: float
    backlog: list[tuple[str, int]]
    csat_average: float
    nps: float
    satisfaction_answers: int
    compensation_points_granted: int


def reporting_period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The period asked for: by default the 30 days up to now."""
    end = end or now
    start = start or end - DEFAULT_PERIOD
    if start >= end:
        raise invalid_field("start_time", "must be before end_time")
    return start, end


async def complaint_kpis(session: AsyncSession, start: datetime, end: datetime) -> ComplaintFigures:
    """The figures of the tickets filed from `start` (inclusive) to `end` (exclusive)."""
    period = {"start": start, "end": end}
    received = await session.execute(
        text(
            "SELECT channel, category, count(*) AS n FROM complaints WHERE create_time >= :start "
            "AND create_time < :end GROUP BY channel, category ORDER BY channel, category"
        ),
        period,
    )
    row = (
        await session.execute(
            text(
                """
                SELECT
                    count(*) FILTER (WHERE resolve_time IS NOT NULL) AS resolved,
                    count(*) FILTER (WHERE first_response_time IS NOT NULL) AS responded,
                    count(*) FILTER (WHERE first_response_time IS NOT NULL AND NOT first_response_breached
                        AND first_response_time <= first_response_due) AS responded_in_time,
                    count(*) FILTER (WHERE resolve_time IS NOT NULL AND NOT resolution_breached
                        AND resolution_business_time <= resolution_target) AS resolved_in_time,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_business_time)
                        FILTER (WHERE resolve_time IS NOT NULL) AS median_resolution,
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY resolution_business_time)
                        FILTER (WHERE resolve_time IS NOT NULL) AS p90_resolution,
                    count(*) FILTER (WHERE resolve_time IS NOT NULL AND reopen_count = 0 AND NOT waited)
                        AS first_contact,
                    count(*) FILTER (WHERE resolve_time IS NOT NULL AND reopen_count > 0) AS reopened,
                    count(csat) AS answers,
                    coalesce(avg(csat), 0) AS csat_average,
                    count(*) FILTER (WHERE nps >= 9) AS promoters,
                    count(*) FILTER (WHERE nps <= 6) AS detractors
                FROM complaints WHERE create_time >= :start AND create_time < :end
                """
            ),
            period,
        )
    ).one()
    granted = await session.scalar(
        text(
            "SELECT coalesce(sum(p.points), 0) FROM complaints c JOIN compensations p ON p.complaint_id = c.id "
            "WHERE c.create_time >= :start AND c.create_time < :end AND p.state = 'granted'"
        ),
        period,
    )
    open_states = [state.value for state in OPEN_STATES]
    backlog = await session.execute(
        text(
            "SELECT department_id, count(*) AS n FROM complaints WHERE state = ANY(:open) "
            "GROUP BY department_id ORDER BY department_id"
        ),
        {"open": open_states},
    )
    resolved = int(row.resolved)
    return ComplaintFigures(
        start=start,
        end=end,
        received=[(r.channel, r.category, int(r.n)) for r in received],
        resolved=resolved,
        first_response_compliance=_share(row.responded_in_time, row.responded),
        resolution_compliance=_share(row.resolved_in_time, resolved),
        median_resolution=row.median_resolution or timedelta(0),
        p90_resolution=row.p90_resolution or timedelta(0),
        first_contact_resolution_rate=_share(row.first_contact, resolved),
        reopen_rate=_share(row.reopened, resolved),
        backlog=[(r.department_id, int(r.n)) for r in backlog],
        csat_average=float(row.csat_average),
        nps=100.0 * (int(row.promoters) - int(row.detractors)) / int(row.answers) if row.answers else 0.0,
        satisfaction_answers=int(row.answers),
        compensation_points_granted=int(granted or 0),
    )


def kpis_to_proto(figures: ComplaintFigures) -> complaint_service_pb2.ComplaintKpis:
    """The figures as callers see them."""
    return complaint_service_pb2.ComplaintKpis(
        start_time=timestamp_to_proto(figures.start),
        end_time=timestamp_to_proto(figures.end),
        received=[
            complaint_service_pb2.ReceivedCount(
                channel=mapping.channel_value(channel),
                category=mapping.category_value(category),
                count=count,
            )
            for channel, category, count in figures.received
        ],
        resolved=figures.resolved,
        first_response_compliance=figures.first_response_compliance,
        resolution_compliance=figures.resolution_compliance,
        median_resolution_time=duration_to_proto(figures.median_resolution),
        p90_resolution_time=duration_to_proto(figures.p90_resolution),
        first_contact_resolution_rate=figures.first_contact_resolution_rate,
        reopen_rate=figures.reopen_rate,
        backlog=[
            complaint_service_pb2.DepartmentBacklog(department=DEPARTMENT.format(d), open_complaints=n)
            for d, n in figures.backlog
        ],
        csat_average=figures.csat_average,
        nps=figures.nps,
        compensation_points_granted=figures.compensation_points_granted,
        satisfaction_answers=figures.satisfaction_answers,
    )


def _share(part: int, whole: int) -> float:
    return int(part) / int(whole) if whole else 0.0

"""The [review] and [ladder] sections of the config: who checks whose fix before a problem is
closed, and who is told, step by step, of an overdue problem or a member who stopped checking in.
Their levels are bot.oversight's; bot.config puts these sections into the Config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bot.config_values import Section

# Who is told or who checks, from the grid up (bot.oversight): the grid's leaders, the leaders
# whose scope covers the grid (the community), the leaders with no scope (the street), admins.
Level = Literal["grid_leader", "community", "street", "admin"]
CheckLevel = Literal["none", "grid_leader", "community", "street", "admin"]


class ReviewSection(Section):
    # Who checks a fix (核查) before the problem is closed (销号), by the role of whoever fixed
    # it; "none" closes on the fix itself. Nobody checks their own fix: with nobody else at a
    # level, the next level up checks.
    member: CheckLevel = "grid_leader"
    grid_leader: CheckLevel = "community"
    leader: CheckLevel = "street"
    admin: CheckLevel = "street"
    # Problems a leader registered are checked at least at this level, whoever fixed them.
    leader_opened: CheckLevel = "community"
    # The after-photo must be taken at most this many hours before it is sent (EXIF time)…
    photo_max_age_hours: float = Field(24, gt=0)
    # …and, when both it and the problem have a location, within this many metres of the problem.
    max_distance_m: float = Field(200, gt=0)
    # A fix waiting this many workday hours for its check: the checkers are reminded, once
    # (by the "ladder" job).
    check_hours: float = Field(24, gt=0)


class LadderStep(Section):
    after_hours: float = Field(0, ge=0)  # workday hours after the deadline
    notify: Level


def _steps(*pairs: tuple[float, str]) -> list[LadderStep]:
    return [LadderStep(after_hours=h, notify=n) for h, n in pairs]  # type: ignore[arg-type]


class LadderSection(Section):
    # 督办 one level at a time: who is told when a problem is overdue, at its deadline and then
    # after so many more workday hours (hours on rest days do not count, unless a campaign makes
    # them workdays); each step once, none once the problem is fixed.
    problems: list[LadderStep] = Field(
        default_factory=lambda: _steps((0, "grid_leader"), (24, "community"), (48, "street")))
    # The same for a member who has not checked in, counted from the check-in deadline
    # ([reminders] nudge_deadline) of the first workday missed, until they check in.
    checkins: list[LadderStep] = Field(
        default_factory=lambda: _steps((0, "grid_leader"), (24, "community"), (48, "street")))

    @field_validator("problems", "checkins")
    @classmethod
    def _ascending(cls, v: list[LadderStep]) -> list[LadderStep]:
        hours = [s.after_hours for s in v]
        if hours != sorted(hours):
            raise ValueError("各级的 after_hours 必须从小到大 / after_hours must not decrease")
        return v

"""What the bot does on its own: job families (reminders, tally, overdue, digest) and the
documents they build, offered to the core as one feature (entry point `gridbot.features`)."""

from __future__ import annotations

from bot.features import Feature
from schedules import digest, export_cli, jobs_cli, monthly, overdue, reminders, supervise, tally

feature = Feature(
    "schedules",
    jobs={
        "daily_reminder": reminders.daily_reminder,
        "checkin_nudge": reminders.checkin_nudge,
        "escalation": reminders.escalation,
        "weekly_tally": tally.weekly_tally,
        "overdue_problems": overdue.overdue_problems,
        "weekly_digest": digest.weekly_digest,
        "monthly_bulletin": monthly.monthly_bulletin,
        "ladder": supervise.ladder,
    },
    commands=(jobs_cli.COMMAND, export_cli.COMMAND),
)

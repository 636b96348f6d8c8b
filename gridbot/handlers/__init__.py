"""Handlers, one module (and one Router) per kind of message, combined here in priority order."""

from __future__ import annotations

from ..dispatch import Router
from . import checkins, commands, groups, leave, misc, problems, reports


def root_router() -> Router:
    # Order matters: commands before problems before free-text reports, which take any text;
    # problems before check-ins, so a photo right after "问题:…" belongs to that problem.
    return Router("root").include(groups.router, commands.router, leave.router, problems.router, checkins.router,
                                  misc.router, reports.router)

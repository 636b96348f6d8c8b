"""How people talk to the bot: one module (and one Router) per kind of message, combined here
in priority order into the feature the core loads (entry point `gridbot.features`)."""

from __future__ import annotations

from bot.features import Feature
from bot.router import Router
from handlers import (checkins, commands, group_binding, leave, misc, points, problem_checks, problem_fixes,
                      problem_withdrawal, problems, reports)

# Order matters: commands before problems before free-text reports, which take any text;
# "撤回 #P12" before problems, whose "问题…" would take "问题 #P12 撤回"; a checker's "销号 #P12"
# before the fix it would otherwise report; problems before check-ins, so a photo right after
# "问题:…" or "整改 #P12 已清理" belongs to that problem.
router = Router("handlers").include(group_binding.router, commands.router, points.router, leave.router,
                                    problem_withdrawal.router, problem_checks.router, problem_fixes.router,
                                    problems.router, checkins.router, misc.router, reports.router)

feature = Feature("handlers", router=router)

"""The escalation ladder as a job (逐级督办, job "ladder"): run it often (every half hour) and it
sends each step of each ladder once, when due (bot.ladder says which and to whom).

Every person hears about everything due for them in one message per run; a problem's steps go
into its history. On a rest day nothing is sent (hours there do not count either), so what
falls due then comes on the next workday — unless a campaign makes every day a workday. A fix
that has waited [review] check_hours for its check reminds its checkers, once. From the command
line (`gridbot jobs run ladder --dry-run`) it only shows what it would send: the running bot
records each step, and only what is recorded is sent once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from bot.clock import zh_date
from bot.context import Bot
from bot.ladder import LADDER_TABLE, Rung, WorkHours, checkin_rungs, overdue_open, problem_rungs, stale_checks
from bot.oversight import LEVEL_ZH, names
from bot.problem_ledger import TABLE, fmt_time, grid_name, overdue_label, short
from bot.problem_review import system_entry
from bot.dry_run import DryRunTransport
from bot.workdays import is_workday
from schedules.reminders import in_turns, local


def _problem_line(bot: Bot, p: dict, now_ts: float) -> str:
    before = (p.get("ladder") or {}).get("told_names", [])
    told = f";此前已告知{'、'.join(before)}" if before else ""
    return (f"#{p['id']} {grid_name(bot.config, p['grid'])} {short(p['text'], 30)}"
            f"({overdue_label(p, now_ts)},期限{fmt_time(bot.config, p['deadline'])}{told})")


def _checkin_line(bot: Bot, r: Rung) -> str:
    s = r.subject
    start = datetime.fromisoformat(s["start"]).date()
    return f"{s['name']}({grid_name(bot.config, s['grid'])},自{zh_date(start)}起连续{s['days']}个工作日未打卡)"


async def ladder(bot: Bot, at: datetime) -> str:
    at = local(bot, at)
    cfg, store = bot.config, bot.store
    if not is_workday(at.date(), cfg.calendar):
        return "今天不是工作日,不督办(休息日的时间不计入督办时限)。"
    # Each step is sent once because it is recorded: a copy of the store that cannot record
    # (`gridbot jobs run` beside the running bot) may only show what would be sent.
    preview = store.readonly
    if preview and not isinstance(bot.transport, DryRunTransport):
        return "逐级督办需要记录已告知到哪一级,只能由运行中的机器人执行;可加 --dry-run 预览将发送的内容。"
    now_ts = at.timestamp()
    hours = WorkHours(cfg.calendar, cfg.tz)
    # A district's two thousand overdue problems, each its workday hours since the deadline:
    # a third of a second in one go, so callbacks get their turns in between.
    problems = []
    async for p in in_turns(overdue_open(store, now_ts)):
        problems += problem_rungs(cfg, store, now_ts, hours, among=[p])
    members = []
    async for grid in in_turns(cfg.grids):  # a district's 24,000 members: callbacks between turns
        members += checkin_rungs(cfg, store, at, hours, grids=[grid])
    inbox: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))  # who → kind → lines
    docs: dict[str, dict] = {}
    # Messages are handled between the turns: a problem closed or reassigned meanwhile must
    # not be written back as it was read. Each change starts from the stored document (they
    # are replaced, never changed in place), checked again just before the write.
    base: dict[str, dict] = {}
    lines: list[tuple[str, str, str, list]] = []  # (problem, kind, line, whom)
    async for r in in_turns(problems):
        p = docs.get(r.subject["id"]) or r.subject
        base.setdefault(p["id"], r.subject)
        lines.append((p["id"], "problems", _problem_line(bot, p, now_ts), [x.userid for x in r.people]))
        state = dict(p.get("ladder") or {})
        state["sent"] = sorted(set(state.get("sent", [])) | {r.step})
        state["told"] = state.get("told", []) + [x.userid for x in r.people]
        state["told_names"] = state.get("told_names", []) + [f"{LEVEL_ZH.get(r.level, '')}{x.name}" for x in r.people]
        if r.top:
            state.update(top=True, top_at=now_ts)
        note = f"逾期督办第{r.step + 1}级:" + (f"告知{LEVEL_ZH.get(r.level, '')}{names(r.people)}" if r.people
                                              else "无新的告知对象")
        entry = system_entry("escalated", now_ts, note, step=r.step, to=[x.userid for x in r.people])
        docs[p["id"]] = {**p, "ladder": state, "history": p["history"] + [entry]}
    for p in stale_checks(cfg, store, now_ts, hours):
        # The checkers are behind, not the rectifier: a reminder to them, once.
        pend = p["pending"]
        line = (f"#{p['id']} {grid_name(cfg, p['grid'])} {short(p['text'], 30)}"
                f"({pend['by_name']}于{fmt_time(cfg, pend['at'])}提交)")
        base.setdefault(p["id"], p)
        lines.append((p["id"], "checks", line, pend.get("checkers", [])))
        docs[p["id"]] = {**p, "pending": {**pend, "reminded": now_ts}, "history": p["history"] + [
            system_entry("check_reminded", now_ts, "提醒核查人尽快核查", to=pend.get("checkers", []))]}
    ladder_docs: dict[str, dict] = {}
    for r in members:
        s = r.subject
        line = _checkin_line(bot, r)
        for person in r.people:
            inbox[person.userid]["checkins"].append(line)
        state = ladder_docs.get(s["id"]) or store.get(LADDER_TABLE, s["id"]) or {**s, "sent": [], "told": []}
        state = {**state, "days": s["days"], "sent": sorted(set(state["sent"]) | {r.step}),
                 "told": state["told"] + [x.userid for x in r.people]}
        if r.top:
            state.update(top=True, top_at=now_ts)
        ladder_docs[s["id"]] = state
    changed = {pid for pid, b in base.items() if store.get(TABLE, pid) is not b}
    for pid in changed:  # looked at again at the next run, as it is by then
        docs.pop(pid, None)
    for pid, kind, line, whom in lines:
        if pid not in changed:
            for uid in whom:
                inbox[uid][kind].append(line)
    if (docs or ladder_docs) and not preview:
        # One durable write for the whole run: the steps are recorded before anyone is told.
        await store.put_many([(TABLE, d, None) for d in docs.values()] +
                             [(LADDER_TABLE, d, None) for d in ladder_docs.values()])
    async for userid, kinds in in_turns(list(inbox.items())):  # a thousand people told, each stored first
        parts = []
        if kinds.get("problems"):
            parts.append("【逾期督办】以下问题已超过整改期限,请督促整改:\n" + "\n".join(kinds["problems"]))
        if kinds.get("checks"):
            parts.append("【待核查提醒】以下整改已提交较长时间,请尽快核查(点核查卡片上的按钮,或回复“核查 #P编号 通过”):\n"
                         + "\n".join(kinds["checks"]))
        if kinds.get("checkins"):
            parts.append("【未打卡督办】以下人员连续未打卡,请督促尽快拍照打卡:\n" + "\n".join(kinds["checkins"]))
        bot.transport.send_text(userid, "\n\n".join(parts))
    if not inbox:
        return "没有需要督办的事项。"
    checks = sum(1 for d in docs.values() if d.get("status") == "pending_check")
    return (f"督办:逾期问题{len({r.subject['id'] for r in problems})}项,连续未打卡{len({r.subject['id'] for r in members})}人,"
            + (f"待核查{checks}项," if checks else "") + f"共告知{len(inbox)}人。")

"""One-tap decisions: WeCom template cards (模板卡片, "button_interaction") and their button keys.

A card is sent as an app message (message/send, msgtype "template_card"); a tap comes back
through the app's callback as a "template_card_event" (bot.events.CardAction) carrying the
button's key, the card's task id and a one-time response code to update the card with. The key
says what the button decides, so the handler needs nothing but the key:

  review:P12:2:pass / review:P12:2:reject   the 2nd fix reported for #P12, passed or rejected
  confirm:R7:yes / confirm:R7:no            report #R7's unusual count confirmed or not counted

WeCom's limits shape the texts: a title of at most 26 characters, key names of 5, values of 26,
the sub-title 112, buttons 10, at most 6 buttons.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Config
from bot.problem_ledger import fmt_time, grid_name, short
from bot.problem_review import REJECT_REASONS

REASON_QUESTION = "reason"


@dataclass(frozen=True)
class ButtonKey:
    kind: str  # "review" or "confirm"
    target: str  # "P12", "R7"
    n: int  # which fix of the problem (review); 0 otherwise
    choice: str  # "pass" / "reject", "yes" / "no"


def parse_key(key: str) -> ButtonKey | None:
    parts = (key or "").split(":")
    try:
        if len(parts) == 4 and parts[0] == "review" and parts[3] in ("pass", "reject"):
            return ButtonKey("review", parts[1], int(parts[2]), parts[3])
        if len(parts) == 3 and parts[0] == "confirm" and parts[2] in ("yes", "no"):
            return ButtonKey("confirm", parts[1], 0, parts[2])
    except ValueError:
        return None
    return None


def _kv(name: str, value: str) -> dict:
    return {"keyname": name[:5], "value": short(value, 26)}


def review_card(cfg: Config, p: dict) -> dict:
    """The checker's card for the fix `p` waits with: what, who, when, the photo checks, and
    通过 / 驳回 with a choice of reason."""
    pend, pid = p["pending"], p["id"]
    # short() keeps each part on one line; the line between them stays (WeCom shows it).
    sub = short(p["text"], 60) + (f"\n整改说明:{short(pend['note'], 40)}" if pend.get("note") else "")
    return {
        "card_type": "button_interaction",
        "source": {"desc": cfg.bot.name},
        "main_title": {"title": f"#{pid} 整改待核查",
                       "desc": short(f"{grid_name(cfg, p['grid'])} · {pend['by_name']} {fmt_time(cfg, pend['at'])}提交", 30)},
        "sub_title_text": sub,
        "horizontal_content_list": [
            _kv("登记", f"{p['reporter_name']} {fmt_time(cfg, p['opened_at'])}"),
            _kv("整改期限", fmt_time(cfg, p["deadline"])),
            _kv("照片核验", " · ".join(pend.get("notes") or []) or "未发现异常"),
        ],
        "button_selection": {
            "question_key": REASON_QUESTION, "title": "驳回原因",
            "option_list": [{"id": f"r{i}", "text": r} for i, r in enumerate(REJECT_REASONS)],
            "selected_id": "r0",
        },
        "task_id": f"review-{pid}-{pend['n']}",
        "button_list": [
            {"text": "通过", "style": 1, "key": f"review:{pid}:{pend['n']}:pass"},
            {"text": "驳回", "style": 3, "key": f"review:{pid}:{pend['n']}:reject"},
        ],
    }


def selected_reason(selected: dict[str, list[str]]) -> str:
    """The rejection reason picked on a review card (the first one when none came back)."""
    for option in selected.get(REASON_QUESTION, []):
        if option.startswith("r") and option[1:].isdigit() and int(option[1:]) < len(REJECT_REASONS):
            return REJECT_REASONS[int(option[1:])]
    return REJECT_REASONS[0]


def confirm_card(cfg: Config, report: dict, why: str) -> dict:
    """The grid leader's card for a report whose count needs confirming (待核实)."""
    rid = report["id"]
    return {
        "card_type": "button_interaction",
        "source": {"desc": cfg.bot.name},
        "main_title": {"title": f"#{rid} 上报待核实", "desc": short(f"{report['name']} · {why}", 30)},
        "sub_title_text": short(report["text"], 112),
        "task_id": f"confirm-{rid}",
        "button_list": [
            {"text": "核实无误", "style": 1, "key": f"confirm:{rid}:yes"},
            {"text": "不予计入", "style": 2, "key": f"confirm:{rid}:no"},
        ],
    }

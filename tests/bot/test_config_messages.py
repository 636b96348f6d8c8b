"""Config errors as an office admin reads them: small broken configs, the exact Chinese message
and the line it points at."""

import re
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config_loading import ConfigError, load_config, parse_config
from bot.scheduler import run_job

from tests.support.factories import AES_KEY, BASE_CONFIG, SECRET, write_config

# Each wrong character written as an escape, so the test file itself cannot be "fixed" by an editor.
LQ, RQ, LS, RS, WQ = "\u201c", "\u201d", "\u2018", "\u2019", "\uff02"
REPO = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
JOBS = ("daily_reminder(每日提醒)、checkin_nudge(未打卡提醒)、escalation(告知网格长)、weekly_tally(周通报)、"
        "overdue_problems(逾期问题通报)、weekly_digest(领导周报)、monthly_bulletin(月通报)、ladder(逐级督办)")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, name="config.toml", env={})
    return [str(p) for p in e.value.problems]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def at(text: str, needle: str, rest: str, nth: int = 1) -> str:
    return f"config.toml:{line_of(text, needle, nth)}: {rest}"


# --- unknown keys ---------------------------------------------------------------------


def test_unknown_key_suggests_the_nearest_known_one():
    text = BASE_CONFIG.replace('street = "测试街道"', 'nmae = "测试街道"')
    assert problems_of(text) == [at(text, "nmae", "bot.nmae:未知字段,是否应为 name?")]


def test_unknown_key_with_nothing_near_lists_what_may_be_written():
    text = BASE_CONFIG.replace("[bot]\n", "[bot]\ncolour = 1\n")
    assert problems_of(text) == [
        at(text, "colour", "bot.colour:未知字段,这里可以填写:name、street、timezone、data_dir、log_level")]


def test_unknown_section_suggests_the_nearest_section():
    text = BASE_CONFIG + "\n[chekin]\nwindow_start = \"07:00\"\n"
    assert problems_of(text) == [at(text, "[chekin]", "chekin:未知的配置段 [chekin],是否应为 [checkin]?")]


# --- wrong types, in plain words -------------------------------------------------------

WRONG_TYPES = [
    ("agent_id = 1000002", 'agent_id = "一百万"', "wecom.agent_id:应为整数,写成了 \"一百万\""),
    ("agent_id = 1000002", "agent_id = 1000002.5", "wecom.agent_id:应为整数,不能带小数,写成了 1000002.5"),
    ('street = "测试街道"', "street = 12", 'bot.street:应为文本,两边要加英文引号 "…",写成了 12'),
    ("enabled = true", 'enabled = "是"', 'aibot.enabled:应为 是/否,请写 true 或 false(不加引号),写成了 "是"'),
    ("households = 400", 'households = "四百"', '网格 g1(1号网格)的 households:应为整数,写成了 "四百"'),
    ('scope = ["xingfu"]', 'scope = "xingfu"', '人员 zhoushuji(周书记)的 scope:应为列表,如 ["a", "b"],写成了 "xingfu"'),
]


@pytest.mark.parametrize("good,bad,message", WRONG_TYPES)
def test_wrong_type_says_what_is_expected(good, bad, message):
    text = BASE_CONFIG.replace(good, bad)
    assert problems_of(text) == [at(text, bad, message)]


def test_wrong_types_in_other_sections():
    text = BASE_CONFIG + ('\n[digest]\ncheckin_threshold = "八成"\n'
                          '\n[calendar]\nextra_workdays = [2026-12-05, "12月6日"]\n'
                          '\n[[categories]]\nid = "ads"\nlabel = "小广告清理"\nkeywords = "小广告"\n')
    assert problems_of(text) == [
        at(text, "checkin_threshold", 'digest.checkin_threshold:应为数字(可以带小数),写成了 "八成"'),
        at(text, "extra_workdays",
           'calendar.extra_workdays 第2项:应为日期,格式如 2026-12-05(不加引号),写成了 "12月6日"'),
        at(text, 'keywords = "小广告"', '类别 ads(小广告清理)的 keywords:应为列表,如 ["a", "b"],写成了 "小广告"'),
    ]


def test_no_pydantic_english_reaches_the_admin():
    text = BASE_CONFIG.replace("port = 0", "port = [1]").replace("households = 400", "households = [400]") + (
        '\n[checkin]\nwindow_start = "早上"\nduplicate_days = 0\n[reminders]\nfocus = 3\n')
    msgs = problems_of(text)
    assert len(msgs) == 5
    for m in msgs:
        assert "Input should" not in m and "valid" not in m and "/" not in m


# --- Chinese quotes and punctuation ------------------------------------------------------


def test_chinese_quotes_are_named_on_every_line_they_occur():
    text = (BASE_CONFIG.replace('name = "李四"', f"name = {LQ}李四{RQ}")
            .replace('role = "leader"\nscope', f"role = {LS}leader{RS}\nscope")
            .replace('userid = "admin"', f"userid = {WQ}admin{WQ}"))
    assert problems_of(text) == [
        at(text, "李四", f'name:请使用英文半角引号 "…",不要用中文引号 {LQ}…{RQ}'),
        at(text, "leader" + RS, f'role:请使用英文半角引号 "…",不要用中文引号 {LS}…{RS}'),
        at(text, "admin" + WQ, f'userid:请使用英文半角引号 "…",不要用全角引号 {WQ}…{WQ}'),
    ]


def test_chinese_comma_and_equals_sign_are_named():
    text = BASE_CONFIG.replace('scope = ["xingfu"]', 'scope = ["xingfu"\uff0c "heping"]').replace(
        'name = "管理员"', 'name \uff1d "管理员"')
    assert problems_of(text) == [
        at(text, "scope", "scope:请把中文逗号 \uff0c 改成英文逗号 ,"),
        at(text, "管理员", "name:请把全角等号 \uff1d 改成英文等号 ="),
    ]


def test_chinese_quotes_inside_a_proper_string_are_text():
    cfg = parse_config(BASE_CONFIG + f'\n[reminders]\nfocus = "整治{LQ}背街小巷{RQ},清理{LS}牛皮癣{RS}"\n', env={})
    assert cfg.reminders.focus == f"整治{LQ}背街小巷{RQ},清理{LS}牛皮癣{RS}"


@pytest.mark.parametrize("tail,message", [
    ('\n[reminders]\nfocus = 整治\n', 'focus:值的写法不对,文本要加英文引号,如 name = "张三";数字、true/false、日期不加引号'),
    ('\n[reminders]\nfocus = "整治\n', "focus:引号没有成对:文本两边都要有英文引号,且不能换行"),
    ("\n[bot]\nname = \"又一个\"\n", "[bot] 这一段前面已经写过,同一段只能出现一次(可重复的段要用两层方括号,如 [[people]])"),
])
def test_toml_syntax_errors_in_chinese(tail, message):
    text = BASE_CONFIG + tail
    # The line tomllib stops at: the value's line, or the repeated [bot] header.
    n = len(BASE_CONFIG.splitlines()) + (2 if tail.startswith("\n[bot]") else 3)
    assert problems_of(text) == [f"config.toml:{n}: {message}"]


def test_a_key_written_twice_points_at_the_second():
    text = BASE_CONFIG.replace('street = "测试街道"', 'street = "测试街道"\nstreet = "别的街道"')
    assert problems_of(text) == [at(text, "别的街道", "street:同一个名称写了两次,每一项只能填写一次")]


# --- people, grids and schedules by name ----------------------------------------------


def test_person_grid_and_schedule_are_named_not_numbered():
    text = BASE_CONFIG.replace('name = "李四"\nrole = "member"\ngrid = "g1"',
                               'name = "李四"\nrole = "member"\ngrid = "g3"').replace(
        'community = "heping"', 'community = "hepin"')
    assert problems_of(text) == [
        at(text, '"hepin"', '网格 g2(2号网格)的 community:社区 "hepin" 不存在,是否应为 heping?'
                            "已有的社区:xingfu(幸福社区)、heping(和平社区)"),
        at(text, 'grid = "g3"', '人员 lisi(李四)的 grid:网格 "g3" 不存在,已有的网格:g1(1号网格)、g2(2号网格)'),
    ]
    text = BASE_CONFIG + '\n[[schedules]]\nname = "周一网格通报"\njob = "weekly_tally"\ncron = "0 9 * * 1-8"\n'
    assert problems_of(text) == [
        at(text, "1-8", f'定时任务{LQ}周一网格通报{RQ}的 cron:cron 表达式 "0 9 * * 1-8" 有误:星期应在 0–7 之间,这里是 8')]


def test_a_bad_cron_is_listed_with_the_other_errors_in_one_pass():
    # Checking the cron is the model's job, not a later cross-check: the admin sees it at once.
    text = BASE_CONFIG.replace("port = 0", "port = -1") + (
        '\n[[schedules]]\nname = "周通报"\njob = "weekly_tally"\ncron = "0 9 * * 8"\n')
    assert problems_of(text) == [
        at(text, "port = ", "server.port:不能小于 0,写成了 -1"),
        at(text, "cron = ", f'定时任务{LQ}周通报{RQ}的 cron:cron 表达式 "0 9 * * 8" 有误:星期应在 0–7 之间,这里是 8'),
    ]


def test_an_item_without_its_id_is_counted_from_one():
    text = BASE_CONFIG + '\n[[people]]\nname = "赵六"\nrole = "member"\ngrid = "g1"\n'
    assert problems_of(text) == [at(text, "[[people]]", "第9个人员(赵六)的 userid:缺少这一项,必须填写", nth=9)]


def test_empty_ids_names_and_keywords_are_refused():
    # An empty keyword would count every message as that category; an empty id names nothing.
    text = BASE_CONFIG.replace('id = "heping"', 'id = ""') + (
        '\n[[categories]]\nid = "ads"\nlabel = "小广告清理"\nkeywords = ["小广告", ""]\n')
    assert problems_of(text) == [
        at(text, 'id = ""', "第2个社区(和平社区)的 id:不能为空"),
        at(text, "keywords", "类别 ads(小广告清理)的 keywords 第2项:不能为空"),
    ]


def test_unknown_target_category_and_scope_suggest_the_nearest():
    text = BASE_CONFIG.replace("households = 400", "households = 400\ntargets = { vist = 50 }").replace(
        'scope = ["xingfu"]', 'scope = ["xingfu", "g7"]')
    msgs = problems_of(text)
    assert msgs[0].startswith(at(text, "targets", '网格 g1(1号网格)的 targets.vist:类别 "vist" 不存在,是否应为 visit?'
                                                  "已有的类别:ads(小广告清理)、"))
    assert msgs[1] == at(text, "scope", '人员 zhoushuji(周书记)的 scope:分管范围里的 "g7" 既不是社区也不是网格,'
                                        "已有的社区:xingfu、heping;已有的网格:g1、g2")


# --- time of day ----------------------------------------------------------------------


def test_time_of_day_fields_are_validated():
    text = BASE_CONFIG + ('\n[checkin]\nwindow_start = 8\nwindow_end = "24:00"\n'
                          '\n[reminders]\nnudge_deadline = "8点"\n')
    assert problems_of(text) == [
        at(text, "window_start", 'checkin.window_start:应为时间,格式如 "08:30",写成了 8'),
        at(text, "window_end", 'checkin.window_end:应为时间,格式如 "08:30",写成了 "24:00"'),
        at(text, "nudge_deadline", 'reminders.nudge_deadline:应为时间,格式如 "08:30",写成了 "8点"'),
    ]


LOOSE_TIMES = ('\n[checkin]\nwindow_start = "6:30"\nwindow_end = 19:45:00\n'
               '\n[reminders]\nnudge_deadline = "\uff12\uff10\uff1a\uff13\uff10"\n')


@pytest.fixture
def config_path(tmp_path):
    # The harness (tests/conftest.py) runs on this file: times as admins actually type them.
    return write_config(tmp_path, LOOSE_TIMES)


async def test_time_of_day_written_loosely_is_understood(harness):
    cfg = harness.bot.config
    assert (cfg.checkin.window_start, cfg.checkin.window_end) == (time(6, 30), time(19, 45))
    # "２０：３０" as a Chinese input method types it; the group reads the usual form.
    await run_job(harness.bot, "下午打卡提醒", "checkin_nudge", at=datetime(2026, 11, 25, 17, 0, tzinfo=TZ))
    await harness.settle()
    [push] = harness.pushes("g1")
    assert push["content"] == "【今日打卡提醒】截至17:00,尚未打卡:@张三 @李四 @王五,请于20:30前拍照打卡。"


# --- missing, enums, ranges --------------------------------------------------------------


def test_missing_required_fields_and_sections():
    text = BASE_CONFIG.replace('corp_id = "wwtest0000000001"\n', "")
    assert problems_of(text) == [at(text, "[wecom]", "wecom.corp_id:缺少这一项,必须填写")]
    start, end = BASE_CONFIG.index("[wecom]"), BASE_CONFIG.index("[aibot]")
    assert problems_of(BASE_CONFIG[:start] + BASE_CONFIG[end:]) == ["config.toml: wecom:缺少 [wecom] 这一段,必须填写"]


def test_bad_choices_suggest_the_nearest():
    text = BASE_CONFIG.replace('mode = "emulator"', 'mode = "emulater"').replace(
        'role = "leader"\nscope', 'role = "leadr"\nscope') + (
        '\n[[schedules]]\nname = "周通报"\njob = "weekly_tallly"\ncron = "0 9 * * 1"\n')
    assert problems_of(text) == [
        at(text, "emulater", 'wecom.mode:取值 "emulater" 无效,是否应为 emulator?可选:emulator(内置模拟器)、live(正式接入企业微信)'),
        at(text, "leadr", '人员 zhoushuji(周书记)的 role:取值 "leadr" 无效,是否应为 leader?'
                          "可选:member(网格员)、grid_leader(网格长)、leader(领导)、admin(管理员)"),
        at(text, "tallly", f'定时任务{LQ}周通报{RQ}的 job:取值 "weekly_tallly" 无效,是否应为 weekly_tally?可选:{JOBS}'),
    ]


def test_numbers_out_of_range():
    text = BASE_CONFIG.replace("port = 0", "port = 70000").replace("households = 400", "households = -4") + (
        "\n[digest]\ncheckin_threshold = 1.5\n[problems]\ndeadline_hours = 0\n")
    assert problems_of(text) == [
        at(text, "port", "server.port:不能大于 65535,写成了 70000"),
        at(text, "households", "网格 g1(1号网格)的 households:不能小于 0,写成了 -4"),
        at(text, "checkin_threshold", "digest.checkin_threshold:不能大于 1,写成了 1.5"),
        at(text, "deadline_hours", "problems.deadline_hours:应大于 0,写成了 0"),
    ]


@pytest.mark.parametrize("cron,why", [
    ("0 9 * *", '应为 5 段,用空格隔开:分 时 日 月 星期(0 或 7 为周日),如 "30 8 * * 1-5" 为周一至周五 8:30,这里有 4 段'),
    ("61 9 * * *", "分钟应在 0–59 之间,这里是 61"),
    ("0 9 32 * *", "日应在 1–31 之间,这里是 32"),
    ("0 9 * 13 *", "月应在 1–12 之间,这里是 13"),
    ("0 9 * * 5-1", "星期的范围 5-1 前大后小"),
    ("*/0 9 * * *", "分钟的间隔 /0 应为正整数"),
    ("0 九 * * *", '小时里的 "九" 无法识别,应为数字'),
])
def test_bad_cron_in_plain_chinese(cron, why):
    text = BASE_CONFIG + f'\n[[schedules]]\nname = "早间提醒"\njob = "daily_reminder"\ncron = "{cron}"\n'
    assert problems_of(text) == [at(text, "cron = ", f'定时任务{LQ}早间提醒{RQ}的 cron:cron 表达式 "{cron}" 有误:{why}')]


def test_timezone_and_log_level():
    text = BASE_CONFIG.replace('timezone = "Asia/Shanghai"', 'timezone = "Asia/Shangai"\nlog_level = "verbose"')
    assert problems_of(text) == [
        at(text, "timezone", 'bot.timezone:未知的时区 "Asia/Shangai",是否应为 "Asia/Shanghai"?'),
        at(text, "log_level", 'bot.log_level:日志级别 "verbose" 无效,可选:TRACE、DEBUG、INFO、SUCCESS、WARNING、'
                              "ERROR、CRITICAL(一般用 INFO)"),
    ]
    assert parse_config(BASE_CONFIG.replace('data_dir = "data"', 'data_dir = "data"\nlog_level = "debug"'),
                        env={}).bot.log_level == "DEBUG"


# --- secrets, files -------------------------------------------------------------------


def test_secrets_are_never_echoed():
    text = BASE_CONFIG.replace(f'secret = "{SECRET}"', "secret = 987654321").replace(
        f'encoding_aes_key = "{AES_KEY}"', f'encoding_aes_key = "{AES_KEY}XYZ"') + (
        "\n[emulator]\nadmin_token = 55555\n")
    msgs = problems_of(text)
    assert msgs == [
        at(text, "secret = ", 'wecom.secret:应为文本,两边要加英文引号 "…"'),
        at(text, "encoding_aes_key", "wecom.encoding_aes_key:EncodingAESKey 应为 43 个字符,现在是 46 个,"
                                     "请从企业微信管理后台完整复制"),
        at(text, "admin_token", 'emulator.admin_token:应为文本,两边要加英文引号 "…"'),
    ]
    assert not any("987654321" in m or AES_KEY in m or "55555" in m for m in msgs)


def test_file_saved_as_gbk_names_the_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(BASE_CONFIG.encode("utf-8").replace("测试街道".encode(), "测试街道".encode("gbk")))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:{line_of(BASE_CONFIG, 'street')}: 文件不是 UTF-8 编码(常见于记事本保存为 ANSI 或 GBK),请用 UTF-8 编码重新保存"]


def test_notepad_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE_CONFIG.encode("utf-8"))
    assert load_config(path).bot.street == "测试街道"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.toml")
    assert str(e.value) == f"{tmp_path / 'nope.toml'}: 无法读取配置文件:找不到该文件或文件夹"


def test_problems_are_listed_top_to_bottom():
    # pydantic reports [server] before [reminders]; the admin reads the file from the top.
    text = '[reminders]\nnudge_deadline = "晚上八点"\n' + BASE_CONFIG.replace("port = 0", "port = -1")
    assert problems_of(text) == [
        at(text, "nudge_deadline", 'reminders.nudge_deadline:应为时间,格式如 "08:30",写成了 "晚上八点"'),
        at(text, "port = ", "server.port:不能小于 0,写成了 -1"),
    ]


def test_every_field_of_the_example_refused_in_chinese_with_its_line():
    """Each `key = value` line of config.example.toml, given a wrong value of each kind: every
    refusal has a line, and none of pydantic's English reaches the admin."""
    lines = (REPO / "config.example.toml").read_text(encoding="utf-8").splitlines()
    checked = 0
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*[A-Za-z_]+\s*=\s*)", line)
        if not m:
            continue
        for wrong in ('"x"', "-5", "[1]", "{ a = 1 }"):
            try:
                parse_config("\n".join(lines[:i] + [m.group(1) + wrong] + lines[i + 1:]), env={})
            except ConfigError as e:
                for p in e.problems:
                    checked += 1
                    assert p.line is not None, str(p)
                    assert not re.search(r"Input|valid|should|must|Value error", p.message), str(p)
    assert checked > 500

"""The `gridbot` command: run, check-config, stats, parse, jobs, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import date, datetime
from pathlib import Path

from bot.config import Config
from bot.config_loading import ConfigError, default_config_path, error_report, load_config
from bot.features import load_features


def load_or_exit(path: str | None) -> Config:
    p = Path(path) if path else default_config_path()
    try:
        return load_config(p)
    except ConfigError as e:
        print(f"网格助手没有启动:{error_report(e)}", file=sys.stderr)
        raise SystemExit(2)


def cmd_check_config(args) -> int:
    p = Path(args.path or args.config or default_config_path())
    try:
        cfg = load_config(p)
    except ConfigError as e:
        print(error_report(e), file=sys.stderr)
        return 2
    if not _require_cjk_font():
        return 2
    print(f"配置正确 / config OK: {p} — {len(cfg.grids)} 个网格, {len(cfg.people)} 人, "
          f"{len(cfg.category_list)} 个类别, {len(cfg.schedules)} 个定时任务")
    _print_groups(cfg)
    from bot.report_vocab import vocabulary_warnings
    for warning in vocabulary_warnings(cfg.report_vocabulary):
        print(f"提醒 / warning: {p}: {warning}")
    if getattr(args, "online", False):
        return _check_online(cfg)
    return 0


def _check_online(cfg: Config) -> int:
    """The live self-check from the command line, before the bot runs: the app's credentials
    and robots, and the AI bot's long connection (one subscribe: it kicks a running bot with the
    same Bot ID, which then stops, so this is for before start; a running bot reports the same
    in its log)."""
    from bot.wecom.aibot_socket import probe
    from bot.wecom.api import WecomClient
    from bot.wecom.selfcheck import APP_OPTIONAL, CheckResult, live_checks
    if cfg.wecom.mode != "live":
        print("模拟器模式,不连接企业微信 / emulator mode: nothing to check online")
        return 0

    async def run() -> list[CheckResult]:
        w = cfg.wecom
        client = WecomClient(w.api_base, w.corp_id, w.secret.get_secret_value(), w.agent_id)
        try:
            results = await live_checks(cfg, client)
        finally:
            await client.close()
        if cfg.aibot.enabled and cfg.aibot.mode == "websocket":
            ok, text = await probe(cfg.aibot, cfg.aibot.ws_url)
            results.append(CheckResult(ok, "aibot", "智能机器人长连接订阅成功,Bot ID 与 Secret 正确 / "
                                                    "long connection OK" if ok else text))
        return results

    results = asyncio.run(run())
    for r in results:
        print(f"  {'✓' if r.ok else '!' if r.optional else '✗'} {r.message}")
    if any(r.optional and not r.ok for r in results):
        print(f"  ! {APP_OPTIONAL}")
    return 0 if all(r.ok or r.optional for r in results) else 1


def _print_groups(cfg: Config) -> None:
    """Each grid and its group chat: from the config, or bound in the group ("绑定 3号网格")."""
    from bot.chat_groups import bindings
    store = None
    if cfg.store.backend == "postgres" or (cfg.data_path / "db").exists():
        from bot.pg_bridge import StoreUnavailable
        try:
            store = open_store(cfg)
        except StoreUnavailable as e:  # the file itself is fine: say why bindings are missing
            print(f"群内绑定未能读取:{e}")
    bound = bindings(cfg, store)
    from bot.wecom.selfcheck import aibot_mode_line
    print(aibot_mode_line(cfg))
    for g in cfg.grids:
        chat, how = bound.get(g.id, ("", ""))
        members = len(cfg.grid_members(g.id))
        where = f"群 {chat}({how})" if chat else "未绑定网格群(在群里@机器人发送“绑定 " + g.name + "”)"
        print(f"  {g.name}({g.id}):{members} 人 · {where}")


def cmd_init(args) -> int:
    """Write a commented config.toml from the example that ships inside the package, so an
    installed `gridbot` (no checkout beside it) can start a deployment too."""
    from importlib.resources import files
    target = Path(args.path)
    if target.exists():
        print(f"{target} 已存在,未覆盖。如需重新生成,请先改名或删除它。/ {target} exists, not overwritten",
              file=sys.stderr)
        return 2
    example = files("bot").joinpath("config.example.toml").read_text(encoding="utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(example, encoding="utf-8")
    except OSError as e:
        print(f"无法写入 {target}:{e.strerror or e} / cannot write {target}", file=sys.stderr)
        return 2
    print(f"已生成 {target}(与示例配置相同,使用内置模拟器)。\n"
          f"下一步:按文件中的注释填写企业微信的企业ID、AgentId、Secret、Token 和 EncodingAESKey,"
          f"把 [wecom] mode 改为 \"live\",用 `gridbot check-config {target}` 检查,"
          f"再用 `gridbot run --config {target}`(或 make run)启动。\n"
          f"/ wrote {target}; fill in the WeCom values, set mode = \"live\", check it, then run.")
    return 0


def cmd_run(args) -> int:
    from bot.app import RUNTIME_KEY, create_app
    from bot.http_guard import serve
    from bot.log import register_secrets, setup_logging
    cfg = load_or_exit(args.config)
    register_secrets(*cfg.secret_values())
    _require_writable_data_dir(cfg)
    if not _hold_data_dir(cfg):
        return 2
    if not _require_cjk_font():
        return 2
    setup_logging(cfg.data_path / "logs", cfg.bot.log_level, tz=cfg.tz)
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    app = create_app(cfg)

    async def main() -> None:
        runner, guard = await serve(app, host, port, cfg.server.read_timeout_seconds, cfg.server.max_connections)
        real_port = runner.addresses[0][1] if runner.addresses else port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        origin = f"http://{shown}:{real_port}"
        lines = app[RUNTIME_KEY].listening(origin)
        if lines:
            print("".join(f"\n  {line}\n" for line in lines), flush=True)
        else:
            print(f"\n  网格助手已启动 / gridbot is running: callback {origin}/wecom/callback\n", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("正在停止… / stopping…", flush=True)
        await guard.close()
        await runner.cleanup()
        from loguru import logger
        await logger.complete()

    _run_loop(main())
    return 0


def _require_cjk_font() -> bool:
    from bot.fonts import MISSING, find_cjk_font
    if find_cjk_font() is None:
        print(MISSING, file=sys.stderr)
        return False
    return True


def _hold_data_dir(cfg: Config) -> bool:
    """Before the log file, the journal or the replay: one bot per data dir. The lock stays
    held until this process ends (the runtime takes it again, which counts as the same hold)."""
    from bot.data_lock import DataDirBusy, acquire
    try:
        acquire(cfg.data_path)
    except DataDirBusy as e:
        print(e, file=sys.stderr)
        return False
    return True


def _require_writable_data_dir(cfg: Config) -> None:
    """The bot acknowledges only what it stored: an unusable data dir stops it at start, with the
    config line to fix, instead of a traceback or a bot that refuses every message."""
    from bot.config_loading import Problem, locate_lines
    from bot.config_messages import os_error_zh
    path = cfg.data_path
    probe = path / f".write-test-{os.getpid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as e:
        source = cfg.source
        line = None
        if source is not None:
            try:
                line = locate_lines(source.read_text(encoding="utf-8")).get(("bot", "data_dir"))
            except OSError:
                pass
        problem = Problem(str(source or "config"), line, "bot.data_dir",
                          f"数据目录 {path} 无法写入:{os_error_zh(e)}。请检查路径、权限和磁盘空间")
        print(f"网格助手没有启动:{error_report(ConfigError([problem]))}", file=sys.stderr)
        raise SystemExit(2)


def _run_loop(coro) -> None:
    """uvloop where available (it roughly halves the event loop's own cost), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


def open_store(cfg: Config, all_weeks: bool = False):
    """Read-only view of the running bot's data: shards plus the journal's tail."""
    from bot.store_choice import store_for
    store = store_for(cfg, readonly=True)
    store.load(recent_weeks=None if all_weeks else 0, today=datetime.now(cfg.tz).date())
    return store


def cmd_stats(args) -> int:
    from bot.stats import compute_stats
    cfg = load_or_exit(args.config)
    try:
        # Never all weeks at once: stats reads them one by one (bot.stats).
        result = compute_stats(open_store(cfg), cfg, args.week)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def cmd_migrate(args) -> int:
    """Copy the data folder into PostgreSQL (bot.pg_migrate)."""
    from bot.data_lock import DataDirBusy
    from bot.log import register_secrets
    from bot.pg_bridge import StoreUnavailable, dsn_password
    from bot.pg_migrate import migrate_to_postgres
    cfg = load_or_exit(args.config)
    dsn = args.dsn or cfg.store.dsn.get_secret_value()
    if not dsn:
        print("请用 --dsn 或环境变量 GRIDBOT_STORE_DSN 给出 PostgreSQL 地址(postgresql://用户名@主机:5432/库名)",
              file=sys.stderr)
        return 2
    register_secrets(*[s for s in (dsn, dsn_password(dsn)) if s])
    try:
        return migrate_to_postgres(cfg.data_path, dsn)
    except (DataDirBusy, StoreUnavailable) as e:
        print(e, file=sys.stderr)
        return 2


def cmd_parse(args) -> int:
    """Try the report parser: a readable Chinese table, --explain (each number and why), or
    --json (one object per message, as the examples file writes them)."""
    from bot.report_explain import explain_lines, table_lines
    from bot.report_parser import parse_report, to_json
    from bot.report_vocab import DEFAULT_VOCABULARY
    from bot.taxonomy import DEFAULT_CATEGORIES
    cfg = load_or_exit(args.config) if (args.config or Path("config.toml").exists() or
                                 Path("config.example.toml").exists()) else None
    vocab = cfg.report_vocabulary if cfg else DEFAULT_VOCABULARY
    labels = {c.id: c.label for c in (cfg.category_list if cfg else DEFAULT_CATEGORIES)}
    try:
        sent = date.fromisoformat(args.date) if args.date else date.today()
    except ValueError:
        print(f"日期格式应为 YYYY-MM-DD,例如 2026-11-25 / --date expects YYYY-MM-DD: {args.date}", file=sys.stderr)
        return 2
    if args.file:
        texts = []
        with open(args.file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    texts.append(json.loads(line)["text"])
                except (ValueError, KeyError, TypeError):
                    print(f"{args.file}:{n}: 需要含 text 字段的 JSON / expected JSON with a text field",
                          file=sys.stderr)
                    return 2
    elif args.text is not None:
        texts = [args.text]
    else:
        print("请给出文本或 --file / give TEXT or --file", file=sys.stderr)
        return 2
    for n, t in enumerate(texts):
        parsed = parse_report(t, vocab, sent, explain=args.explain)
        if args.json:
            print(json.dumps(to_json(parsed), ensure_ascii=False))
            continue
        if n:
            print()
        lines = (explain_lines if args.explain else table_lines)(t, parsed, sent, lambda c: labels.get(c, c))
        print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gridbot", description="网格助手 gridbot")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def add(name: str, fn, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--config", help="配置文件 (默认 ./config.toml, 否则 config.example.toml)")
        p.set_defaults(fn=fn)
        return p

    p = sub.add_parser("init", help="生成配置文件 config.toml / write a commented config.toml")
    p.add_argument("path", nargs="?", default="config.toml")
    p.set_defaults(fn=cmd_init)
    p = add("run", cmd_run, "启动机器人 / start the bot")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p = add("check-config", cmd_check_config, "检查配置文件 / validate a config file")
    p.add_argument("path", nargs="?")
    p.add_argument("--online", action="store_true",
                   help="连接企业微信检查凭证(请在机器人启动前使用) / check the credentials with WeCom")
    p = add("stats", cmd_stats, "统计数字 / counts")
    p.add_argument("--json", action="store_true")
    p.add_argument("--week", help="YYYY-Www, 按工作日期")
    p = add("migrate", cmd_migrate, "把数据目录迁入 PostgreSQL / copy the data folder into PostgreSQL")
    p.add_argument("--to", choices=["postgres"], required=True)
    p.add_argument("--dsn", help="postgresql://用户名@主机:5432/库名(默认取配置 [store] dsn 或 GRIDBOT_STORE_DSN)")
    p = add("parse", cmd_parse, "解析上报文本 / parse report text")
    p.add_argument("text", nargs="?")
    p.add_argument("--file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--explain", action="store_true", help="逐个说明每个数字为什么计入或不计入")
    p.add_argument("--date", help="按这一天发送来解析(YYYY-MM-DD,默认今天)")
    for feature in load_features():
        for command in feature.commands:
            command.add_arguments(add(command.name, command.run, command.help))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args) or 0


if __name__ == "__main__":
    sys.exit(main())

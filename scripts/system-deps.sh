#!/usr/bin/env bash
# Installs the Debian packages gridbot needs when they are missing:
# a CJK font for charts, chromium for the browser tests, and PostgreSQL (the tests start a
# throwaway server of their own, tests/support/postgres.py: nothing runs as a service).
set -u
need=()
fc-list 2>/dev/null | grep -qi "WenQuanYi Micro Hei" || [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "安装系统依赖 / installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || {
    echo "系统依赖安装失败 / could not install: ${need[*]}" >&2
    [ "${CI:-}" = "true" ] && exit 1
  }
else
  echo "缺少系统依赖 / missing system packages (install them by hand): ${need[*]}" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
exit 0

#!/usr/bin/env bash
# Runs the whole suite at dates that have broken date-dependent tests before: a public
# holiday, a make-up workday (调休, a Saturday), New Year's Eve just before midnight, and a
# date beyond the years the chinese-calendar package covers. Needs Debian's faketime.
set -u
cd "$(dirname "$0")/.."
command -v faketime >/dev/null || { echo "需要 faketime:apt-get install -y faketime" >&2; exit 2; }
status=0
for at in "2026-10-01 10:00:00" "2026-10-10 09:00:00" "2026-12-31 23:50:00" "2027-06-15 09:00:00"; do
  echo "== $at"
  # '@' starts the fake clock at that moment and lets it run, so timeouts still work.
  faketime -f "@$at" .venv/bin/python -m pytest -q "$@" | tail -n 3 || status=1
done
exit $status

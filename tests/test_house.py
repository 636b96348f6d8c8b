"""The rule that keeps the house livable (DESIGN.md, "Shape of the code"): features depend on
the core, never the reverse, and never on each other; no import cycles; small modules with
names of their own. Imports are read with `ast`, so an import hidden inside a function counts."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "schedules")
MAX_LINES = 400
# Which top-level package may import which (besides itself).
ALLOWED = {"bot": set(), "handlers": {"bot"}, "schedules": {"bot"}}


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules `name` imports, anywhere in the file (TYPE_CHECKING blocks excepted:
    they never run, so they make no runtime dependency)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            # `from pkg import submodule` depends on the submodule (the package's __init__ runs
            # first anyway, as it does for any submodule: that is not a cycle of ours).
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_features_depend_on_the_core_and_never_the_reverse():
    broken = []
    for mod, deps in graph().items():
        top = mod.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other != top and other not in ALLOWED[top]:
                broken.append(f"{mod} imports {dep}")
    assert broken == []


def test_handler_modules_stand_alone():
    # One module and one Router per kind of message: what two handlers share lives in the core.
    g = graph()
    shared = [f"{mod} imports {dep}" for mod, deps in g.items()
              if mod.startswith("handlers.") for dep in deps if dep.startswith("handlers")]
    assert shared == []


def test_no_import_cycles():
    g = graph()
    # Packages import their own submodules on purpose (a package's __init__ assembling its
    # feature); what must not happen is a module coming back round to itself.
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == []


def test_modules_are_small():
    big = {name: n for name, path in modules().items()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert big == {}


def test_no_two_modules_share_a_name():
    by_leaf = defaultdict(list)
    for name, path in modules().items():
        if path.name != "__init__.py":
            by_leaf[path.stem].append(name)
    assert {leaf: names for leaf, names in by_leaf.items() if len(names) > 1} == {}


def test_the_core_finds_its_features_through_entry_points():
    from bot.features import load_features
    names = [f.name for f in load_features()]
    assert names == ["emulator", "handlers", "schedules"]
    jobs = {j for f in load_features() for j in f.jobs}
    assert jobs == {"daily_reminder", "checkin_nudge", "escalation", "weekly_tally", "overdue_problems",
                    "weekly_digest", "monthly_bulletin", "ladder"}
    from bot.config import KNOWN_JOBS
    assert jobs == set(KNOWN_JOBS)  # every job a schedule may name has its function

"""The packages import only downward (docs/design.md): utils < imaging < models < transforms < data <
features < train < infer < report < run < the front doors. Every ``import`` counts, module-level or
inside a function, so a loop cannot hide behind a lazy import."""
from __future__ import annotations

import ast
from pathlib import Path

import visiontune

PACKAGE = Path(visiontune.__file__).parent
LAYERS = ["utils", "imaging", "models", "transforms", "data", "features", "train", "infer", "report", "run"]
TOP = len(LAYERS)  # cli, demo, imports, lesson, __init__, __main__: the front doors, above every layer


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "visiontune":
        return None
    if len(parts) == 1:
        return TOP
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else TOP


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found += [(node.lineno, n) for n in names]
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = _module_name(path)
        mine = _layer(me)
        for line, target in _imports(path):
            theirs = _layer(target)
            if theirs is not None and mine < TOP and theirs > mine:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {me} ({LAYERS[mine]}) imports "
                                f"{target} ({LAYERS[theirs] if theirs < TOP else 'front door'})")
    return problems


# Upward imports that the redesign has not removed yet, each with the step that removes it. The list only
# shrinks: an upward import not listed here fails the test.
NOT_YET_MOVED = {
    ("visiontune/train/learner.py", "visiontune.report.interpret"):
        "learn.interpret() moves with the lesson's ConvLearner facade to a front-door layer above report",
}


def test_layers_import_only_downward():
    problems = [p for p in upward_imports()
                if (p.split(":")[0], p.split(" imports ")[1].split(" ")[0]) not in NOT_YET_MOVED]
    assert problems == []


def import_cycles() -> list[list[str]]:
    """Cycles between visiontune's modules (lazy imports included); package __init__ files are left out,
    since they only name their exports (utils.lazy.lazy_exports) and import nothing eagerly."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for _, target in _imports(path):
            while target and target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # `from .registry import Arch` -> the module registry
            if target in modules and target != name:
                edges.add(target)
        graph[name] = edges
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


# Known cycles not yet broken, with the step that breaks it; the list only shrinks.
KNOWN_CYCLES = {
    ("visiontune.models.registry", "visiontune.models.backbone", "visiontune.models.registry"):
        "Arch.__call__ (the lesson's arch(pretrained)) moves to the lesson front door",
}


def _rotation(cycle) -> tuple[str, ...]:
    """One spelling of a loop, whichever of its modules the search entered it by: it starts at its
    alphabetically first module (``a -> b -> a`` and ``b -> a -> b`` are the same loop)."""
    body = list(cycle[:-1])
    start = body.index(min(body))
    body = body[start:] + body[:start]
    return tuple(body + body[:1])


def test_no_import_cycles():
    known = {_rotation(c) for c in KNOWN_CYCLES}
    assert [c for c in import_cycles() if _rotation(c) not in known] == []


def test_the_checker_sees_relative_and_lazy_upward_imports():
    # registry.py imports create_body from .backbone inside Arch.__call__: a lazy relative import
    assert "visiontune.models.backbone" in [t for _, t in _imports(PACKAGE / "models" / "registry.py")]
    assert _rotation(["visiontune.models.registry", "visiontune.models.backbone", "visiontune.models.registry"]) in [
        _rotation(c) for c in import_cycles()]
    assert _layer("visiontune.train.learner") > _layer("visiontune.models.registry")
    assert _layer("visiontune.cli") == TOP and _layer("numpy") is None

"""Import structure, read with `ast` (nothing is imported): layering, no cycles, torch's place.

Every `import` statement counts, also those inside functions (a lazy import is still a
dependency), except those under `if TYPE_CHECKING:` (annotations only).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bulletsim", "calibrate")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


@cache
def imports_of(name: str) -> frozenset[str]:
    """Absolute names of every module `name` imports (a `from m import x` counts m and m.x)."""
    path = modules()[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return frozenset(out)


def internal_imports(name: str) -> set[str]:
    """The project modules `name` imports (a package import counts its `__init__`)."""
    mods = modules()
    return {m for m in imports_of(name) if m in mods and m != name}


def reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for m in internal_imports(todo.pop()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def third_party(names: set[str]) -> set[str]:
    return {i.split(".")[0] for m in names for i in imports_of(m)}


PURE = ("bulletsim.policies", "bulletsim.core", "bulletsim.state", "bulletsim.latency")
ENGINE_CODE = ("bulletsim.engine", "bulletsim.simulate", "bulletsim.run", "bulletsim.gpu",
               "bulletsim.live")  # fmt: skip


def test_policies_core_state_latency_import_no_engine_code():
    pure = [m for m in modules() if any(m == p or m.startswith(p + ".") for p in PURE)]
    assert "bulletsim.policies.bullet" in pure and "bulletsim.latency.roofline" in pure
    for m in pure:
        closure = reachable(m) | {m}
        bad = {x for x in closure if any(x == e or x.startswith(e + ".") for e in ENGINE_CODE)}
        assert not bad, f"{m} reaches engine code {sorted(bad)}"
        heavy = third_party(closure) & {"simpy", "torch", "flashinfer", "pandas", "matplotlib"}
        assert not heavy, f"{m} imports {sorted(heavy)} (directly or through {sorted(closure)})"


def test_torch_only_under_gpu_live_and_calibrate():
    allowed = ("bulletsim.gpu", "bulletsim.live", "calibrate")
    for m in modules():
        if any(m == a or m.startswith(a + ".") for a in allowed):
            continue
        heavy = {i.split(".")[0] for i in imports_of(m)} & {"torch", "flashinfer"}
        assert not heavy, f"{m} imports {sorted(heavy)}"


def import_graph() -> dict[str, list[str]]:
    return {m: sorted(internal_imports(m)) for m in modules()}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of `graph` (module -> modules it imports), as a path, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := dfs(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in graph:
        if m not in state and (found := dfs(m)):
            return found
    return None


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None
    assert strongly_connected({"a": ["b"], "b": ["a"], "c": ["a"]}) == [frozenset({"a", "b"})]
    assert strongly_connected({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


def strongly_connected(graph: dict[str, list[str]]) -> list[frozenset[str]]:
    """The groups of modules that import each other (Tarjan), those of 2 or more only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(frozenset(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    groups = strongly_connected(import_graph())
    assert not groups, f"modules that import each other: {[sorted(g) for g in groups]}"
    assert find_cycle(import_graph()) is None

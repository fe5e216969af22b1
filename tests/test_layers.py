"""The package's layers import top to bottom only: core < domains < agents, gan < engine < one package per
domain's CLM < tools < cli, report.

Every import in every module counts, the ones inside functions too, so a
lazy import cannot hide a layer break."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clm"
#: what each layer may import from the package (besides itself)
BELOW_ENGINE = {"core", "domains", "agents", "gan"}
DOMAIN_CLMS = {"levels_clm", "art_clm", "text_clm", "design_clm"}
ALLOWED = {
    "core": set(),
    "domains": {"core"},
    "agents": {"core"},
    "gan": {"core"},
    "engine": {"core", "agents", "gan"},  # the engine knows no domain: it reads them through the registry
    "gan_adapters": {"core", "domains", "gan"},
    # one package per domain's CLM: the engine and what lies below it, never another domain's CLM
    **{name: BELOW_ENGINE | {"engine"} for name in DOMAIN_CLMS},
    "tools": BELOW_ENGINE | {"engine", "gan_adapters"} | DOMAIN_CLMS,
    "envs": BELOW_ENGINE,
    "cli": BELOW_ENGINE | {"engine", "gan_adapters", "tools", "report", "envs", "serve"} | DOMAIN_CLMS,
    "serve": BELOW_ENGINE | {"engine"} | DOMAIN_CLMS,  # clm serve: a levels run's G, the player's page
    "report": BELOW_ENGINE | {"engine", "gan_adapters", "tools"} | DOMAIN_CLMS,
}


def _package_imports(path: Path) -> set[str]:
    """The clm layers a module imports (``clm.X...`` -> X)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        out |= {n.split(".")[1] for n in names if n.startswith("clm.") and n.count(".") >= 1}
    return out


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for other in _package_imports(path) - ALLOWED[layer] - {layer}:
            bad.append(f"{path.relative_to(SRC)} imports clm.{other}")
    assert not bad, "layer breaks: " + "; ".join(bad)


def test_the_checker_sees_a_lazy_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from clm.domains.levels import Level\n    import clm.engine.loop\n")
    assert _package_imports(p) == {"domains", "engine"}


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), f"packages with no layer in ALLOWED: {sorted(packages - set(ALLOWED))}"


def _module_name(path: Path) -> str:
    parts = ["clm", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the clm modules it imports (inside functions too); ``from P import m`` counts m when it is a module."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("clm.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("clm"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                targets |= subs or {node.module}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (c := visit(t)):
                return c
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

"""The package's layers import top to bottom only: core < domains < agents, gan < hybrid < cli, report.

Every import in every module counts, the ones inside functions too, so a
lazy import cannot hide a layer break."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clm"
#: what each layer may import from the package (besides itself)
ALLOWED = {
    "core": set(),
    "domains": {"core"},
    "agents": {"core"},
    "gan": {"core"},
    "hybrid": {"core", "domains", "agents", "gan"},
    "cli": {"core", "domains", "agents", "gan", "hybrid", "report"},
    "report": {"core", "domains", "agents", "gan", "hybrid"},
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
    p.write_text("def f():\n    from clm.domains.levels import Level\n    import clm.hybrid.loop\n")
    assert _package_imports(p) == {"domains", "hybrid"}

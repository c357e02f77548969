"""The stages import one way: layers → coverage → maps, and maps only through coverage's front door.

Every import statement of every module (top level and inside functions) is read with
``ast``, resolved to the ``carecircle`` module it names, and checked against what its stage
may import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Package -> its folder in the repository (pyproject.toml's package-dir).
FOLDERS = {"carecircle": "carecircle", "carecircle.layers": "layers", "carecircle.coverage": "coverage",
           "carecircle.maps": "maps"}
#: What a stage's modules may import from carecircle (module names or packages, by prefix).
ALLOWED = {
    "carecircle.layers": ("carecircle.layers", "carecircle.errors"),
    "carecircle.coverage": ("carecircle.coverage", "carecircle.layers", "carecircle.errors"),
    # maps reads the analysis through its front door and the profile it was made with; the
    # layers' coordinate conversions serve the map and the package.
    "carecircle.maps": ("carecircle.maps", "carecircle.coverage.analysis", "carecircle.coverage.profile",
                        "carecircle.layers", "carecircle.errors"),
}
#: Edges that break the rule today, each with the change that removes it. The test fails
#: when one disappears, so the entry is deleted with the import.
KNOWN = {
    ("carecircle.maps.labels", "carecircle.coverage.standards"):
        "the label tables move out of coverage/standards.py into maps/ (issue 10, branch h11)",
}


def modules(folders: dict[str, Path]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the packages in ``folders``."""
    out = {}
    for package, folder in folders.items():
        for path in sorted(folder.glob("*.py")):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The carecircle modules ``name`` (at ``path``) imports anywhere in its code."""
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from carecircle.coverage import standards` imports the module standards.
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in out if m == "carecircle" or m.startswith("carecircle.")}


def forbidden_edges(folders: dict[str, Path]) -> set[tuple[str, str]]:
    """(importer, imported) pairs that break :data:`ALLOWED`."""
    found = modules(folders)
    bad = set()
    for name, path in found.items():
        stage = next((s for s in ALLOWED if name == s or name.startswith(s + ".")), None)
        if stage is None:
            continue  # the front door (carecircle.*) wires every stage
        for target in imports(name, path, set(found)):
            if not any(target == ok or target.startswith(ok + ".") for ok in ALLOWED[stage]):
                bad.add((name, target))
    return bad


def test_no_stage_imports_upstream_or_past_the_front_door():
    edges = forbidden_edges({p: REPO / f for p, f in FOLDERS.items()})
    new = sorted(edges - set(KNOWN))
    assert not new, "forbidden imports: " + "; ".join(f"{a} imports {b}" for a, b in new)
    gone = sorted(set(KNOWN) - edges)
    assert not gone, "no longer imported, delete from KNOWN: " + "; ".join(f"{a} → {b}" for a, b in gone)


@pytest.mark.parametrize(
    "stage,code,edge",
    [
        ("coverage", "def f():\n    from carecircle.maps import html\n", ("carecircle.coverage.x", "carecircle.maps.html")),
        ("coverage", "from ..maps.export import write_tables\n", ("carecircle.coverage.x", "carecircle.maps.export")),
        ("layers", "import carecircle.coverage.reach\n", ("carecircle.layers.x", "carecircle.coverage.reach")),
        ("maps", "from carecircle.coverage import snap\n", ("carecircle.maps.x", "carecircle.coverage.snap")),
        ("maps", "from carecircle.coverage.graph import build_graph\n", ("carecircle.maps.x", "carecircle.coverage.graph")),
        ("maps", "from carecircle import pipeline\n", ("carecircle.maps.x", "carecircle.pipeline")),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, stage, code, edge):
    folders = {}
    for package, folder in FOLDERS.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
        folders[package] = tmp_path / folder
    for module in ("maps/html", "maps/export", "coverage/reach", "coverage/snap", "coverage/graph", "carecircle/pipeline"):
        (tmp_path / f"{module}.py").write_text("")
    (tmp_path / stage / "x.py").write_text(code)
    assert forbidden_edges(folders) == {edge}


def test_allowed_imports_pass(tmp_path):
    folders = {}
    for package, folder in FOLDERS.items():
        (tmp_path / folder).mkdir()
        folders[package] = tmp_path / folder
    (tmp_path / "coverage" / "analysis.py").write_text("from carecircle.layers.network import Network\n")
    (tmp_path / "maps" / "x.py").write_text("from carecircle.coverage.analysis import Analysis\nfrom . import y\n")
    (tmp_path / "maps" / "y.py").write_text("from carecircle.coverage import profile\n")
    (tmp_path / "coverage" / "profile.py").write_text("")
    assert forbidden_edges(folders) == set()

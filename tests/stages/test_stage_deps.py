"""Every project module a stage imports is one of its dependencies in dvc.yaml.

The imports are read from the code (every ``import``, at any depth, of ``numpynet`` or of a
stage helper beside the stages, such as ``_bootstrap``), followed module by module; a module counts as covered when dvc.yaml lists
its file or a folder holding it. Only download may leave out the code that moves bytes: what it
stores is fixed by the pins it does list (see the comment at the top of dvc.yaml).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers.project import PROJECT

SRC = PROJECT / "src"
# Modules that decide how bytes travel, never which bytes are stored.
FETCH_ONLY = {
    "src/numpynet/__init__.py",
    "src/numpynet/backend.py",
    "src/numpynet/stage_entry.py",
    "src/numpynet/stopping.py",
    "src/numpynet/data/web_page.py",
    "src/numpynet/errors.py",
    "src/numpynet/files.py",
    "src/numpynet/log.py",
    "src/numpynet/data/__init__.py",
    "src/numpynet/data/fetch/download.py",
    "src/numpynet/data/fetch/mirrors.py",
    "src/numpynet/data/fetch/transport.py",
}


def stage_definitions() -> dict[str, dict]:
    stages = YAML(typ="safe").load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def module_file(name: str) -> Path | None:
    """The file of a ``numpynet`` module or package, or None for anything else."""
    if name != "numpynet" and not name.startswith("numpynet."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(script: Path) -> set[Path]:
    """Every project file that running ``script`` imports, directly or not."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from numpynet.data import processed` may name a submodule.
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                helper = script.parent / f"{name}.py"
                if name.startswith("_") and helper.is_file():  # _bootstrap, _dvclive_log
                    pending.append(helper)
                    continue
                parts = name.split(".")
                # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
                for depth in range(1, len(parts) + 1):
                    found = module_file(".".join(parts[:depth]))
                    if found is not None:
                        pending.append(found)
    return seen


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(stage_definitions()))
def test_every_imported_module_is_a_dependency(stage):
    definition = stage_definitions()[stage]
    script = PROJECT / definition["cmd"].split()[1]
    deps = [dep for dep in definition["deps"] if "${" not in dep]
    used = sorted(str(p.relative_to(PROJECT)) for p in imported_files(script))
    exempt = FETCH_ONLY if stage == "download" else set()
    missing = [path for path in used if path not in exempt and not covered(path, deps)]
    assert not missing, f"{stage} imports {missing} but dvc.yaml does not list them as deps"


@pytest.mark.parametrize("stage", sorted(stage_definitions()))
def test_every_code_dependency_exists(stage):
    """A renamed module must not leave a dependency on a path that is no longer there."""
    for dep in stage_definitions()[stage]["deps"]:
        if dep.startswith(("src/", "stages/")):
            assert (PROJECT / dep).exists(), f"{stage} depends on {dep}, which does not exist"


def test_the_import_walk_sees_indirect_and_late_imports():
    """The checker itself: train reaches the layers through two hops and a local import."""
    used = {str(p.relative_to(PROJECT)) for p in imported_files(PROJECT / "stages" / "train.py")}
    assert "stages/_bootstrap.py" in used
    assert "src/numpynet/backend.py" in used
    assert "src/numpynet/nn/layers.py" in used
    assert not covered("src/numpynet/nn/layers.py", ["src/numpynet/n"])
    assert covered("src/numpynet/nn/layers.py", ["src/numpynet/nn"])


@pytest.mark.parametrize("stage", sorted(stage_definitions()))
def test_no_code_dependency_is_superfluous(stage):
    """A listed module the stage never imports would rerun it for nothing."""
    definition = stage_definitions()[stage]
    used = [str(p.relative_to(PROJECT)) for p in imported_files(PROJECT / definition["cmd"].split()[1])]
    code_deps = [dep for dep in definition["deps"] if dep.startswith(("src/", "stages/"))]
    unused = [dep for dep in code_deps if not any(covered(path, [dep]) for path in used)]
    assert not unused, f"{stage} lists {unused} as deps but never imports them"

"""The packages depend one way: lockngen → progress → generations → comfyui (comfyui_sim is a
tool that imports only comfyui). Read from the source, so a new import against the arrows
fails here before anyone has to notice it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.procs import ROOT

PACKAGES = ("lockngen", "progress", "generations", "comfyui", "comfyui_sim")
# What each package may import from the others.
ALLOWED = {
    "lockngen": {"progress", "generations", "comfyui", "comfyui_sim"},
    "progress": {"generations", "comfyui"},
    "generations": {"comfyui"},
    "comfyui": set(),
    "comfyui_sim": {"comfyui"},
}
NO_DJANGO = ("comfyui", "comfyui_sim")


def imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def graph() -> dict[str, set[str]]:
    return {
        package: set().union(*(imported(p) for p in (ROOT / package).rglob("*.py")))
        for package in PACKAGES
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_arrows(package: str) -> None:
    others = graph()[package] & set(PACKAGES) - {package}
    assert others <= ALLOWED[package], f"{package} imports {sorted(others - ALLOWED[package])}"


@pytest.mark.parametrize("package", NO_DJANGO)
def test_the_comfyui_packages_are_plain_python(package: str) -> None:
    assert not graph()[package] & {"django", "channels", "daphne", "generations", "progress"}


def test_the_check_sees_the_real_arrows() -> None:
    found = graph()
    assert "generations" in found["progress"] and "comfyui" in found["generations"]
    assert "progress" in found["lockngen"]

"""The atheris harnesses in fuzz/ name only what the package has: a
harness left behind by a move fails only when someone runs it, hours
later (atheris is not installed in CI; tests/test_fuzz.py runs the same
properties)."""
import ast
import importlib
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
HARNESSES = sorted(FUZZ.glob("fuzz_*.py"))


def capsfast_names(tree):
    """{local name: (module, attribute or None)} for each capsfast import."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "capsfast":
            for alias in node.names:
                bound[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "capsfast":
                    continue
                if alias.asname:  # import capsfast.x as y: y is capsfast.x
                    bound[alias.asname] = (alias.name, None)
                else:  # import capsfast.x binds capsfast
                    bound["capsfast"] = ("capsfast", None)
    return bound


def resolve(module, name):
    imported = importlib.import_module(module)
    if name is None:
        return imported
    if hasattr(imported, name):
        return getattr(imported, name)
    return importlib.import_module(module + "." + name)  # a submodule


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda p: p.name)
def test_a_harness_names_only_what_exists(harness):
    tree = ast.parse(harness.read_text())
    bound = capsfast_names(tree)
    assert bound, "%s imports nothing of capsfast" % harness.name
    values = {local: resolve(module, name) for local, (module, name) in bound.items()}
    missing = sorted("%s.%s" % (node.value.id, node.attr) for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                     and node.value.id in values and not hasattr(values[node.value.id], node.attr))
    assert not missing, missing


def test_every_harness_is_checked():
    assert len(HARNESSES) >= 6, HARNESSES

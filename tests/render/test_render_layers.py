"""The renderers sit below the package's top and the command line: each is
a pure function from a Host to text, and none of them imports ``capsfast``
itself (its public API probes) or the CLI (which writes files)."""
import ast
from pathlib import Path

import capsfast

PACKAGE = Path(capsfast.__file__).resolve().parent


def imported(path):
    """The capsfast modules and names a module imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "capsfast")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "capsfast":
            found.update("%s:%s" % (node.module, alias.name) for alias in node.names)
    return found


def test_no_renderer_imports_the_top_or_the_cli():
    modules = sorted((PACKAGE / "render").glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        for name in imported(path):
            module, _, attribute = name.partition(":")
            assert name != "capsfast", "%s imports the package's top" % path.name
            if module == "capsfast":  # from capsfast import X: a submodule only
                assert (PACKAGE / attribute).with_suffix(".py").exists() or (PACKAGE / attribute).is_dir(), \
                    "%s imports %s from the package's top" % (path.name, attribute)
            assert not module.startswith("capsfast.cli"), "%s imports %s" % (path.name, module)


def test_watch_sits_below_the_cli():
    assert not [name for name in imported(PACKAGE / "watch.py") if name.startswith("capsfast.cli")]

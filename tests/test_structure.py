"""The package's shape: no import cycle (imports inside functions count),
one module touches cffi, and the start-up import budget holds."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import capsfast

PACKAGE = Path(capsfast.__file__).resolve().parent


def module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def runtime_nodes(tree):
    """Every node, except those under ``if TYPE_CHECKING:`` (never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(path, known, type_only=False):
    """capsfast modules a module imports, at any depth of its code (and,
    with ``type_only``, under ``if TYPE_CHECKING:`` too).
    ``from capsfast import probing`` imports capsfast.host; ``from
    capsfast import probe`` (a name the package defines) imports capsfast."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in (ast.walk(tree) if type_only else runtime_nodes(tree)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "capsfast":
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "capsfast":
                continue
            for alias in node.names:
                sub = base + "." + alias.name
                found.add(sub if sub in known else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("capsfast"):
                found.add(node.args[0].value)
    found.discard(name)
    return {m for m in found if m in known}


def cycles_of(graph):
    """Every loop of imports in ``graph`` (module -> imported modules)."""
    cycles = []

    def visit(node, stack, on_stack, done):
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, stack, on_stack, done)
        on_stack.discard(node)
        stack.pop()
        done.add(node)

    done = set()
    for node in sorted(graph):
        if node not in done:
            visit(node, [], set(), done)
    return cycles


def test_no_import_cycle():
    known = modules()
    cycles = cycles_of({name: imports_of(path, known) for name, path in known.items()})
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_crossing_touches_cffi():
    known = modules()
    touching = []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        imports_cffi = any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "cffi" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "cffi")
            for n in ast.walk(tree)
        )
        reaches_in = any(
            isinstance(n, ast.Attribute) and n.attr in ("lib", "ffi") and getattr(n.value, "id", "") == "_native"
            for n in ast.walk(tree)
        )
        if imports_cffi or reaches_in or "capsfast._capsfast" in imports_of(path, set(known) | {"capsfast._capsfast"}):
            touching.append(name)
    assert touching == ["capsfast._native"], touching


def test_import_budget_and_no_probing_at_import():
    code = (
        "import sys; before = set(sys.modules); import capsfast; "
        "from capsfast import _native; n = _native.cpuid_executed(); "
        "print(sorted(m for m in ('lxml', 'argparse', 'json', 're', 'dataclasses', 'typing', 'threading', "
        "'functools', 'collections') "
        "if m in set(sys.modules) - before), n)"
    )
    # -S: without site, whose start-up hooks (an editable install's finder)
    # may import re or typing themselves.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE.parent)] + [p for p in sys.path if p]))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split("]")[0] + "]" == "[]", out.stdout
    assert out.stdout.strip().endswith(" 0"), out.stdout  # importing ran no CPUID


# -- the layers -------------------------------------------------------------------

def all_nodes(tree):
    """Every node, type-only imports (``if TYPE_CHECKING:``) included: a
    type-only import still makes two modules change together."""
    return ast.walk(tree)


# Imports run down only: each module's layer, top first.  Within a layer a
# module imports only inside its own package (a render module another
# render module, a part its own files); the commands (the package's API,
# cli, bench) and the bottom layer may use their peers.
LAYERS = [
    ("capsfast", "capsfast.__main__", "capsfast.cli", "capsfast.bench"),
    ("capsfast.watch",),
    ("capsfast.render",),
    ("capsfast.readiness",),
    ("capsfast.host",),
    ("capsfast.recording",),
    ("capsfast.parts",),
    ("capsfast.cpu_map",),
    ("capsfast.sources",),
    ("capsfast._native",),
    ("capsfast.model", "capsfast.errors", "capsfast.bounded_json", "capsfast.constants", "capsfast.libvirt_xml", "capsfast._capsfast"),
]


def layer_of(module):
    """(layer index, the unit inside it: a top-level module or package, a
    part of capsfast.parts)."""
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "capsfast" and module.startswith(name + ".")):
                if best is None or len(name) > len(best[2]):
                    best = (index, name, name)
    if best is None:
        best = (0, "capsfast", "capsfast")
    index, name, _ = best
    unit = name
    if name == "capsfast.parts" and module != name:
        unit = ".".join(module.split(".")[:3])
    return index, unit


def graph_with_types():
    known = modules()
    return {name: imports_of(path, known, type_only=True) for name, path in known.items()}


def test_imports_run_down_the_layers_only():
    wrong = []
    for module, imported in sorted(graph_with_types().items()):
        here, unit = layer_of(module)
        for target in sorted(imported):
            there, target_unit = layer_of(target)
            peers = here in (0, len(LAYERS) - 1)  # the commands' layer, and the bottom
            if there < here or (there == here and unit != target_unit and not peers):
                wrong.append("%s -> %s" % (module, target))
    assert not wrong, "\n".join(wrong)


def test_no_cycle_even_through_type_only_imports():
    cycles = cycles_of(graph_with_types())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_type_only_imports_are_counted():
    """The count this shape allows: a new one is a new dependency like any."""
    known = modules()
    counted = 0
    for name, path in known.items():
        counted += len(imports_of(path, known, type_only=True) - imports_of(path, known))
    # Type-only imports are imports: they obey the layers above, and their
    # number is watched here so that one added is a decision, not a habit.
    # 25 before domain capabilities; their engine's records and the
    # expanded CPU named by its readers and renderers (NFD's labels among
    # them) make 34.
    assert counted <= 34, counted


def test_only_the_sources_reach_the_c_module():
    """Above the sources, only the benchmark (which measures the crossing
    itself) names capsfast._native."""
    graph = graph_with_types()
    reaching = sorted(m for m, imported in graph.items() if "capsfast._native" in imported
                      and not m.startswith(("capsfast.sources", "capsfast.bench")))
    assert reaching == [], reaching


def test_the_collector_imports_only_the_standard_library():
    path = PACKAGE / "recording" / "collector.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else (node.module or "").split(".")[0])
    stdlib = getattr(sys, "stdlib_module_names", None)
    assert "capsfast" not in names and "." not in names, names
    if stdlib is not None:
        assert names <= set(stdlib), names - set(stdlib)


# What a pure file of a part may not touch: the file system, processes,
# the C crossing or a source (beyond its plain values and markers).
IO_MODULES = {"os", "io", "subprocess", "socket", "shutil", "tempfile", "glob", "fcntl", "select", "selectors",
              "signal", "pathlib", "mmap", "capsfast._native", "capsfast.sources.base", "capsfast.sources.live",
              "capsfast.sources.replay", "capsfast.sources.boot", "capsfast.sources.cache"}
IO_CALLS = {"open", "__import__"}


def io_of(path):
    """The I/O modules ``path`` imports (anywhere, type-only excepted) and
    the I/O builtins it calls."""
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in IO_MODULES
                         or alias.name.split(".")[0] in IO_MODULES)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            module = node.module or ""
            for alias in node.names:
                full = module + "." + alias.name
                if module in IO_MODULES or full in IO_MODULES or module.split(".")[0] in IO_MODULES:
                    found.add(full if full in IO_MODULES else module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in IO_CALLS:
            found.add(node.func.id + "()")
    return found


def folder_parts():
    return sorted(p for p in (PACKAGE / "parts").iterdir() if (p / "__init__.py").is_file())


def test_every_folder_part_reads_parses_and_decides_in_files_of_those_names():
    """A newcomer finds a part's I/O in ``read``, its parsing in ``parse``
    and its rules in ``decide``, in every folder part."""
    missing = ["%s/%s.py" % (folder.name, name) for folder in folder_parts()
               for name in ("read", "parse", "decide") if not (folder / (name + ".py")).is_file()]
    assert not missing, missing


# Files named by their subject that say they are pure.
PURE_SUBJECTS = ("domcaps/cpu.py", "domcaps/firmware.py", "domcaps/qapi.py", "domcaps/model.py")


def test_parse_and_decide_are_pure():
    impure = {}
    for folder in folder_parts():
        for name in ("parse", "decide"):
            path = folder / (name + ".py")
            if path.is_file() and io_of(path):
                impure["%s/%s.py" % (folder.name, name)] = sorted(io_of(path))
    for name in PURE_SUBJECTS:
        if io_of(PACKAGE / "parts" / name):
            impure[name] = sorted(io_of(PACKAGE / "parts" / name))
    assert not impure, impure


def test_the_purity_check_sees_io(tmp_path):
    """The check above is not blind: it sees an I/O import at any depth and
    a call to open(), and passes a type-only import of a source."""
    pure = tmp_path / "pure.py"
    pure.write_text("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from capsfast.sources.base import Source\n"
                    "from capsfast.sources.rounds import ABSENT\n")
    assert io_of(pure) == set()
    impure = tmp_path / "impure.py"
    impure.write_text("def f(path):\n    import os.path\n    from capsfast.sources import live\n"
                      "    return open(path).read()\n")
    assert io_of(impure) == {"os.path", "capsfast.sources.live", "open()"}

"""A command pays only for what it prints: no automatic garbage collection
in a short command (watch and export --every collect again), and no json
module on the --machines path, its cache cold or warm."""
import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capsfast.errors import CapsfastError
from scenarios import HOSTS

SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "capsfast"

# Put first on the child's path: reports each automatic collection on
# stderr.  A collection first, so that what the interpreter's own start
# allocated does not count against the command.
SITECUSTOMIZE = """
import gc, os
gc.collect()
def _report(phase, info):
    if phase == "start":
        os.write(2, b"test-hook: a garbage collection ran\\n")
gc.callbacks.append(_report)
"""


@pytest.fixture
def gc_hook(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook)] + sys.path),
                XDG_CACHE_HOME=str(tmp_path / "cache"))


@pytest.mark.parametrize("argv", [["capabilities"], ["capabilities", "--format", "json"], ["check"],
                                  ["capabilities", "--replay", str(HOSTS / "intel-enabled")]])
def test_a_short_command_collects_no_garbage(gc_hook, argv):
    """The capsfast command (``python -m capsfast`` imports the package
    before its __main__ runs: collections there are those of any import)."""
    done = subprocess.run([sys.executable, str(SCRIPT)] + argv, env=gc_hook, capture_output=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout
    assert b"test-hook" not in done.stderr, done.stderr


def test_the_hook_sees_collections(gc_hook):
    """The check above can fail: the same child, collecting, is seen."""
    code = "import gc; gc.collect(); [[] for _ in range(100000)]"
    done = subprocess.run([sys.executable, "-c", code], env=gc_hook, capture_output=True, timeout=60)
    assert b"test-hook" in done.stderr


@pytest.fixture
def collection_off():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()
    else:  # pragma: no cover
        gc.disable()


def test_watch_collects_again(collection_off, monkeypatch, tmp_path, capsys):
    from contextlib import contextmanager

    from capsfast import watch
    from capsfast.cli import main

    seen = []

    @contextmanager
    def changes(**_kwargs):
        seen.append(gc.isenabled())
        yield iter(())

    monkeypatch.setattr(watch, "changes", changes)
    assert main(["watch", "--root", str(tmp_path)]) == 0
    assert seen == [True]


def test_export_every_collects_again(collection_off):
    from capsfast.cli import export

    seen = []

    def make():
        seen.append(gc.isenabled())
        raise CapsfastError("stop here")

    with pytest.raises(CapsfastError):
        export._keep_fresh(60.0, "unused", make)
    assert seen == [True]


def emulator_root(tmp_path):
    root = tmp_path / "root"
    binary = root / "usr/bin/qemu-system-x86_64"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n[ \"$1 $2\" = \"-machine help\" ] || exit 3\n"
                      "echo 'Supported machines are:'\necho 'pc   Standard PC (alias of pc-i440fx-7.2)'\n"
                      "echo 'pc-i440fx-7.2   Standard PC (default)'\n")
    binary.chmod(0o755)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/arch").write_text("x86_64\n")
    return root


def test_machines_imports_no_json_cold_or_warm(tmp_path):
    root = emulator_root(tmp_path)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    for turn in ("cold", "warm"):
        done = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT), "capabilities", "--machines",
                               "--root", str(root)], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert b"pc-i440fx-7.2" in done.stdout, turn
        imported = [line.rsplit(b"|", 1)[-1].strip() for line in done.stderr.splitlines()
                    if line.startswith(b"import time:")]
        assert b"capsfast.parts.guests.machines" in imported
        assert not [name for name in imported if name == b"json" or name.startswith(b"json.")], turn
    assert len(os.listdir(tmp_path / "cache" / "capsfast")) >= 1


def test_machines_cache_round_trip_and_corruption(tmp_path):
    from capsfast.model import Machine
    from capsfast.parts.guests import machines

    cache = str(tmp_path / "m")
    runs = []

    def runner(binary):
        runs.append(binary)
        return "Supported machines are:\npc   Standard PC (alias of pc-q35)\npc-q35   Q35 (deprecated)\n"

    binary = tmp_path / "qemu\tweird name"
    binary.write_text("")
    first = machines.machines_for([str(binary)], runner, cache)
    again = machines.machines_for([str(binary)], runner, cache)
    assert first == again == {str(binary): (Machine("pc", "pc-q35", False), Machine("pc-q35", None, True))}
    assert len(runs) == 1
    written = open(cache, "rb").read()
    head = machines._MAGIC + b"\n" + machines._KEY + b"\n"
    assert written.startswith(head)
    # The last: the entries whole, in the file of version 2 (a header line
    # of its own): another cache's file, never read as this one.
    for garbage in (b"", b"{}", head + b"x\0", written[:-3],
                    b"capsfast machine types 2\n" + written[len(head):]):
        with open(cache, "wb") as f:
            f.write(garbage)
        assert machines._load(cache) == {}
        assert machines.machines_for([str(binary)], runner, cache) == first  # a miss, asked again
    assert len(runs) == 6


@pytest.mark.parametrize("argv", [["check"], ["check", "-q"], ["check", "--json"], ["capabilities"],
                                  ["capabilities", "--format", "json"]])
def test_live_commands_import_only_what_they_use(tmp_path, argv):
    """Neither json, re nor functools, and nothing of recordings or
    subprocesses: none of them serves a live probe (its caches warm: a cold
    host CPU model parses libvirt's CPU map, XML)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    subprocess.run([sys.executable, str(SCRIPT)] + argv, env=env, capture_output=True, timeout=120)
    done = subprocess.run([sys.executable, "-X", "importtime", str(SCRIPT)] + argv, env=env,
                          capture_output=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    imported = {line.rsplit(b"|", 1)[-1].strip().decode() for line in done.stderr.splitlines()
                if line.startswith(b"import time:")}
    assert "capsfast.host" in imported
    unused = {"json", "re", "subprocess", "tempfile", "shutil", "functools", "collections", "capsfast.recording"}
    assert not imported & unused, sorted(imported & unused)

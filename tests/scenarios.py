"""Scenario hosts under tests/hosts/<name>/ and their golden files.

Each scenario directory is a recording (``capsfast record`` makes them; these
are mostly hand-made): ``root/`` (a fake root tree), an optional
``cpuid.txt`` (``cpuid -r -1`` dump), ``scenario.json`` (format, description,
``arch`` where the root does not tell, ``msr`` values, hand-written
``expect`` assertions for the tests) and golden outputs (``expected.json``, ``expected-libvirt.xml``,
``expected-draft.xml``).  ``CAPSFAST_REGENERATE=1`` rewrites the goldens
instead of comparing; review the diff.
"""
import json
import os
import shutil
from pathlib import Path

HOSTS = Path(__file__).resolve().parent / "hosts"
REGENERATE = os.environ.get("CAPSFAST_REGENERATE") == "1"


class Scenario:
    """One recording under tests/hosts/, replayed as ``--replay DIR`` does."""

    def __init__(self, directory):
        self.dir = directory
        self.name = directory.name
        meta = json.loads((directory / "scenario.json").read_text())
        self.description = meta.get("description", "")
        self.arch = meta.get("arch")
        self.msr = {int(k, 16): int(v, 16) for k, v in meta.get("msr", {}).items()}
        self.expect = meta.get("expect", {})
        dump = directory / "cpuid.txt"
        self.dump = str(dump) if dump.exists() else None

    def __repr__(self):
        return "Scenario(%s)" % self.name

    def probe(self, tmp_path=None, **extra):
        import capsfast

        return capsfast.probe(replay=str(self.dir), **extra)

    def planted_root(self, tmp_path):
        """The fake root with the MSRs planted where the msr driver would
        serve them (a sparse file: the MSR number is the offset), for
        probing it as a hand-made tree with --root and --cpuid-dump."""
        root = tmp_path / "root"
        shutil.copytree(self.dir / "root", root, symlinks=True)
        if self.msr:
            msr = root / "dev" / "cpu" / "0" / "msr"
            msr.parent.mkdir(parents=True, exist_ok=True)
            with open(msr, "wb") as f:
                for number, value in self.msr.items():
                    f.seek(number)
                    f.write(value.to_bytes(8, "little"))
        return str(root)


def all_scenarios():
    if not HOSTS.is_dir():
        return []
    return [Scenario(d) for d in sorted(HOSTS.iterdir()) if (d / "scenario.json").exists()]


def check_golden(path, text):
    """Compare ``text`` with the golden file at ``path`` (or rewrite it)."""
    path = Path(path)
    if REGENERATE or not path.exists():
        if not REGENERATE:
            raise AssertionError(
                "%s is missing: run with CAPSFAST_REGENERATE=1 and review it" % path
            )
        path.write_text(text)
        return
    assert text == path.read_text(), "output differs from %s (CAPSFAST_REGENERATE=1 rewrites it)" % path


def lookup(doc, dotted):
    """``doc["a"]["b"]`` for ``"a.b"``."""
    for part in dotted.split("."):
        doc = doc[part]
    return doc

"""Scenario hosts under tests/hosts/<name>/ and their golden files.

Each scenario directory holds ``root/`` (a fake root tree), an optional
``cpuid.txt`` (``cpuid -r -1`` dump), ``scenario.json`` (description,
``args`` such as ``arch``, ``msr`` values to plant, hand-written ``expect``
assertions) and golden outputs (``expected.json``, ``expected-libvirt.xml``,
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
    def __init__(self, directory):
        self.dir = directory
        self.name = directory.name
        meta = json.loads((directory / "scenario.json").read_text())
        self.description = meta.get("description", "")
        self.args = meta.get("args", {})
        self.msr = {int(k, 16): int(v, 16) for k, v in meta.get("msr", {}).items()}
        self.expect = meta.get("expect", {})
        dump = directory / "cpuid.txt"
        self.dump = str(dump) if dump.exists() else None

    def __repr__(self):
        return "Scenario(%s)" % self.name

    def root(self, tmp_path):
        """The fake root, copied to ``tmp_path`` when MSRs must be planted
        (a sparse file: the MSR number is the offset)."""
        if not self.msr:
            return str(self.dir / "root")
        root = tmp_path / "root"
        shutil.copytree(self.dir / "root", root, symlinks=True)
        msr = root / "dev" / "cpu" / "0" / "msr"
        msr.parent.mkdir(parents=True, exist_ok=True)
        with open(msr, "wb") as f:
            for number, value in self.msr.items():
                f.seek(number)
                f.write(value.to_bytes(8, "little"))
        return str(root)

    def probe(self, tmp_path, **extra):
        import capsfast

        return capsfast.probe(root=self.root(tmp_path), cpuid=self.dump, arch=self.args.get("arch"), **extra)


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

"""The kept document of ``domain_capabilities`` (in memory and on disk)
is handed out only while everything it was decided from is unchanged:
a CPU map file removed is a new document (the transcript's own key is
part of the document's: tests/parts/domcaps/test_domcaps_cache.py holds
each of its parts to a miss)."""
import os
import shutil
import subprocess
import sys

import pytest

EMULATOR = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(EMULATOR is None, reason="qemu-system-x86_64 is not installed")


def run(env, *args):
    done = subprocess.run([sys.executable, "-m", "capsfast", "domcapabilities", "--virttype", "qemu"] + list(args),
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))


def kept_documents(env):
    directory = os.path.join(env["XDG_CACHE_HOME"], "capsfast")
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.startswith("domcaps-"))


def test_second_process_reads_the_kept_document(env):
    first = run(env)
    (path,) = kept_documents(env)
    with open(path) as f:
        magic, key, text = f.read().split("\n", 2)  # the cache's magic line, the key line, the document
    assert text == first
    # what is on disk under a matching key is what is handed out: marked, it shows
    with open(path, "w") as f:
        f.write(magic + "\n" + key + "\n" + first.replace("<domain>qemu</domain>", "<domain>qemu</domain><!-- kept -->"))
    assert "<!-- kept -->" in run(env)


def test_a_changed_cpu_map_is_a_new_document(env, tmp_path):
    first = run(env)
    cpu_map = tmp_path / "cpu_map"
    shutil.copytree("/usr/share/libvirt/cpu_map", cpu_map)
    assert run(dict(env, CAPSFAST_CPU_MAP=str(cpu_map))) == first  # the same files: the same document
    (cpu_map / "x86_Conroe.xml").unlink()
    index = cpu_map / "index.xml"
    index.write_text(index.read_text().replace("<include filename='x86_Conroe.xml'/>", ""))
    changed = run(dict(env, CAPSFAST_CPU_MAP=str(cpu_map)))
    assert ">Conroe</model>" in first and ">Conroe</model>" not in changed

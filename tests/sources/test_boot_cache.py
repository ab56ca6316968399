"""The per-boot cache (capsfast.sources.boot): the first answer of a process
from a warm cache is the answer computed without it, byte for byte; each
invalidator makes the next answer follow the truth; what must stay live
does; a bad file is never trusted; a recording never touches it."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import capsfast
from capsfast import host as probing
from capsfast.parts.cpu_model import read as cpu_model_read
from capsfast.parts.guests import read as guests_read
from capsfast.parts.topology import read as topology_read
from capsfast.sources import boot
from scenarios import HOSTS, all_scenarios

FORMATS = ("libvirt", "draft", "json")
READERS = {"topology": topology_read, "cpu_model": cpu_model_read, "guests": guests_read}
SYSTEM_CPU_MAP = "/usr/share/libvirt/cpu_map"
BOOT_A = "0b9a3d6e-5f43-4b8e-9c4a-7e2f1a6d8c01\n"
BOOT_B = "6c1e8f2a-9d37-4a5b-b0c8-3f4e5d6a7b92\n"
# A stamp taken within discover's racy window is never trusted (the next
# reading lists again): the trees made here are left older than that.
SETTLE = 0.05


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("CAPSFAST_CACHE", raising=False)
    return home / "capsfast"


@pytest.fixture
def reads(monkeypatch):
    """How often each part was read rather than served from the cache."""
    counts = dict.fromkeys(READERS, 0)
    for name, module in READERS.items():
        real = module.boot_facts

        def counted(source, host, real=real, name=name):
            counts[name] += 1
            return real(source, host)

        monkeypatch.setattr(module, "boot_facts", counted)
    return counts


def answers(host):
    return {f: capsfast.capabilities(host, format=f) for f in FORMATS}


class FakeHost:
    """A scenario's tree planted as a fake root with a boot id of its own."""

    def __init__(self, tmp_path, name="intel-numa-two-node", boot_id=BOOT_A, cpu_map=None):
        scenario = next(s for s in all_scenarios() if s.name == name)
        self.root = Path(scenario.planted_root(tmp_path))
        self.dump = scenario.dump
        self.arch = scenario.arch or "x86_64"
        self.cpu_map = cpu_map
        if boot_id is not None:
            self.write("proc/sys/kernel/random/boot_id", boot_id)
        time.sleep(SETTLE)

    def write(self, relative, text):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, relative):
        return (self.root / relative).read_text()

    def probe(self):
        return capsfast.probe(root=str(self.root), cpuid=self.dump, arch=self.arch, cpu_map=self.cpu_map)

    def answers(self):
        return answers(self.probe())

    def uncached(self, monkeypatch):
        with monkeypatch.context() as m:
            m.setenv("CAPSFAST_CACHE", "off")
            return self.answers()

    def file(self):
        return Path(boot.file_for("root", str(self.root)))


@pytest.fixture
def map_copy(tmp_path):
    if not os.path.isdir(SYSTEM_CPU_MAP):
        pytest.skip("no libvirt CPU map on this machine (%s)" % SYSTEM_CPU_MAP)
    copy = tmp_path / "cpu_map"
    shutil.copytree(SYSTEM_CPU_MAP, copy)
    return str(copy)


# -- equality: warm answers are the uncached ones ----------------------------------

def test_this_hosts_first_answer_from_a_warm_cache_is_the_uncached_one(cache_home, reads, monkeypatch,
                                                                       fresh_process_state):
    cold = answers(capsfast.probe())
    assert any(cache_home.glob("boot-*-live-*.bin"))
    filled = dict(reads)
    assert filled == dict.fromkeys(READERS, 1)
    probing.forget_live()  # as a new process
    warm = answers(capsfast.probe())
    assert reads == filled, "a warm first answer read a part again"
    probing.forget_live()
    monkeypatch.setenv("CAPSFAST_CACHE", "off")
    uncached = answers(capsfast.probe())
    assert warm == uncached == cold


def test_a_fresh_process_answers_the_same_from_a_warm_cache(cache_home, tmp_path):
    def run(*extra_env):
        env = dict(os.environ, **dict(extra_env))
        return [subprocess.run([sys.executable, "-m", "capsfast", "capabilities", "--format", f], env=env,
                               capture_output=True, text=True, check=True).stdout for f in FORMATS]

    cold = run()
    assert any(cache_home.glob("boot-*-live-*.bin"))
    warm = run()
    assert run(("CAPSFAST_CACHE", "off")) == warm == cold


@pytest.mark.parametrize("name", [s.name for s in all_scenarios()])
def test_every_scenario_host_answers_the_same_from_a_warm_cache(name, tmp_path, cache_home, reads, monkeypatch):
    host = FakeHost(tmp_path, name)
    cold = host.answers()
    filled = dict(reads)
    warm = host.answers()
    assert reads == filled
    assert warm == host.uncached(monkeypatch) == cold


# -- each invalidator ----------------------------------------------------------------

def test_a_cpu_taken_offline_shows_in_the_next_answer(tmp_path, cache_home, reads, monkeypatch):
    host = FakeHost(tmp_path)
    before = host.probe().topology
    assert host.probe().topology == before and reads["topology"] == 1  # served from the cache
    # As the kernel offlines a CPU: its topology directory goes too.
    host.write("sys/devices/system/cpu/cpu5/online", "0\n")
    shutil.rmtree(host.root / "sys/devices/system/cpu/cpu5/topology")
    host.write("sys/devices/system/cpu/online", "0-4,6\n")
    after = host.probe().topology
    assert after != before
    assert host.answers() == host.uncached(monkeypatch)


def test_a_new_microcode_shows_in_the_next_answer(tmp_path, cache_home, reads, monkeypatch, map_copy):
    host = FakeHost(tmp_path, cpu_map=map_copy)
    assert host.probe().cpu_model.microcode == 0x21
    assert host.probe().cpu_model.microcode == 0x21 and reads["cpu_model"] == 1  # served from the cache
    host.write("proc/cpuinfo", host.read("proc/cpuinfo").replace("0x21", "0x2f"))
    assert host.probe().cpu_model.microcode == 0x2F
    assert host.answers() == host.uncached(monkeypatch)


def test_a_cpu_map_file_touched_decodes_again(tmp_path, cache_home, reads, monkeypatch, map_copy):
    host = FakeHost(tmp_path, cpu_map=map_copy)
    model = host.probe().cpu_model
    assert model.name is not None
    host.probe().cpu_model
    assert reads["cpu_model"] == 1
    os.utime(os.path.join(map_copy, "x86_features.xml"))
    host.probe().cpu_model
    assert reads["cpu_model"] == 2
    # A map that names the model otherwise: the next answer follows it.
    index = os.path.join(map_copy, "index.xml")
    text = Path(index).read_text()
    line = "<include filename='x86_%s.xml'/>" % model.name
    assert line in text
    Path(index).write_text(text.replace(line, ""))
    assert host.probe().cpu_model.name != model.name
    assert host.answers() == host.uncached(monkeypatch)


def test_an_emulator_added_to_a_path_directory_shows_in_the_next_answer(tmp_path, cache_home, reads, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    host = FakeHost(tmp_path)
    before = {g.arch for g in host.probe().guests}
    assert {g.arch for g in host.probe().guests} == before and reads["guests"] == 1  # served from the cache
    assert "aarch64" not in before
    emulator = host.root / "usr/bin/qemu-system-aarch64"
    emulator.write_text("")
    emulator.chmod(0o755)
    assert {g.arch for g in host.probe().guests} == before | {"aarch64"}
    time.sleep(SETTLE)
    assert host.answers() == host.uncached(monkeypatch)


def test_an_emulator_made_unexecutable_leaves_the_next_answer(tmp_path, cache_home, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    host = FakeHost(tmp_path)
    assert "x86_64" in {g.arch for g in host.probe().guests}
    (host.root / "usr/bin/qemu-system-x86_64").chmod(0o644)  # the directory's mtime stays
    assert "x86_64" not in {g.arch for g in host.probe().guests}
    time.sleep(SETTLE)
    assert host.answers() == host.uncached(monkeypatch)


def test_a_new_boot_id_reads_everything_again(tmp_path, cache_home, reads, monkeypatch):
    host = FakeHost(tmp_path)
    assert host.probe().uuid is not None
    uuid_file = "sys/class/dmi/id/product_uuid"
    host.write(uuid_file, "4c4c4544-0042-3510-8052-b4c04f333232\n")
    # Fixed while the system runs: the same boot serves the kept UUID...
    host.probe().uuid
    assert reads["topology"] == 1
    # ... a new boot reads it again.
    host.write("proc/sys/kernel/random/boot_id", BOOT_B)
    assert host.probe().uuid == "4c4c4544-0042-3510-8052-b4c04f333232"
    assert reads["topology"] == 2


# -- what stays live -------------------------------------------------------------------

def test_a_cells_memory_and_huge_pages_are_read_live(tmp_path, cache_home, reads, monkeypatch):
    host = FakeHost(tmp_path)
    cell = host.probe().topology.cells[0]
    assert host.probe().topology.cells[0] == cell and reads["topology"] == 1  # served from the cache
    meminfo = "sys/devices/system/node/node0/meminfo"
    host.write(meminfo, host.read(meminfo).replace("4194304", "8388608"))
    assert host.probe().topology.cells[0].memory_kib == cell.memory_kib * 2
    pool = "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    count = int(host.read(pool))
    host.write(pool, "%d\n" % (count + 3))
    pages = {p.size_kib: p.number for p in host.probe().topology.cells[0].pages}
    assert pages[2048] == count + 3
    assert host.answers() == host.uncached(monkeypatch)


# -- a file that is not to be trusted --------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign magic", "empty"])
def test_a_corrupt_or_foreign_file_is_ignored_and_replaced(tmp_path, cache_home, reads, monkeypatch, damage):
    host = FakeHost(tmp_path)
    truth = host.answers()
    path = host.file()
    data = path.read_bytes()
    path.write_bytes({"garbage": os.urandom(len(data)), "truncated": data[:len(data) // 2],
                      "foreign magic": b"capsfast something else 1" + data[data.index(b"\n"):],
                      "empty": b""}[damage])
    assert host.answers() == truth
    assert reads["topology"] == 2
    # Replaced: the next answer is served from it.
    assert host.answers() == truth
    assert reads["topology"] == 2


def test_a_file_of_another_boot_is_not_trusted(tmp_path, cache_home):
    host = FakeHost(tmp_path)
    host.probe().topology
    kept = host.file().read_bytes()
    host.write("sys/devices/system/node/node1/distance", "20 10\n")
    host.write("proc/sys/kernel/random/boot_id", BOOT_B)
    new = host.probe().topology
    assert host.file().read_bytes() != kept
    # The other boot's file laid back: its key is not this boot's.
    host.file().write_bytes(kept)
    assert host.probe().topology == new


def test_two_processes_filling_at_once_leave_one_valid_file(tmp_path, cache_home):
    host = FakeHost(tmp_path)
    script = ("import capsfast; print(capsfast.capabilities(capsfast.probe(root=%r, cpuid=%r, arch=%r)))"
              % (str(host.root), host.dump, host.arch))
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home.parent))
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(4)]
    outputs = {run.communicate()[0] for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(outputs) == 1
    assert sorted(p.name for p in cache_home.iterdir() if p.name.startswith("boot-")) == [host.file().name]
    source = capsfast.sources.base.Source(str(host.root), host.arch, host.dump)
    store = boot.open_store(source)
    assert store is not None
    assert all(store.get(part) is not None for part in ("topology", "guests"))


# -- where there is no cache ----------------------------------------------------------

def test_off_means_no_file(tmp_path, cache_home, monkeypatch):
    host = FakeHost(tmp_path)
    host.answers()
    assert host.file().exists()
    host.file().unlink()
    monkeypatch.setenv("CAPSFAST_CACHE", "off")
    host.answers()
    assert not host.file().exists()


def test_a_root_without_a_boot_id_has_no_cache(tmp_path, cache_home):
    host = FakeHost(tmp_path / "with")
    host.answers()
    assert host.file().exists()
    without = FakeHost(tmp_path / "without", boot_id=None)
    without.answers()
    assert not without.file().exists()
    assert [p.name for p in cache_home.glob("boot-*")] == [host.file().name]


def test_a_recording_neither_reads_nor_fills_the_cache(tmp_path, cache_home, monkeypatch):
    opened = []
    real = boot.Store
    monkeypatch.setattr(boot, "Store", lambda *a: opened.append(a) or real(*a))
    # A recording whose root even holds a boot id: replayed, it brings its
    # own facts; the same tree probed as a fake root is keyed on it.
    recording = tmp_path / "recording"
    shutil.copytree(HOSTS / "intel-numa-two-node", recording, symlinks=True)
    boot_id = recording / "root/proc/sys/kernel/random/boot_id"
    boot_id.parent.mkdir(parents=True)
    boot_id.write_text(BOOT_A)
    answers(capsfast.probe(replay=str(recording)))
    assert opened == []
    assert not cache_home.exists() or not any(cache_home.glob("boot-*"))
    answers(capsfast.probe(root=str(recording / "root"), arch="x86_64"))
    assert len(opened) == 1 and any(cache_home.glob("boot-*-root-*"))

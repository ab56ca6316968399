"""Host.cpu_model: its inputs, the disk cache, the CLI and recordings.

The decode itself is checked against libvirt's corpus in
test_cpu_decode.py; the real libvirt on this machine in
test_libvirt_live.py.  Here each case builds its host from libvirt's
corpus (a CPUID dump of a real CPU) and the copied CPU map, so the expected
model is libvirt's.
"""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import capsfast
from capsfast import _native
from capsfast.recording import collector
from capsfast.parts.cpu_model import parse
from capsfast.parts.cpu_model import read as hostcpu
from capsfast.cli import main
from capsfast.errors import CapsfastError
from capsfast.model import Tsc

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
MAP_DIR = os.path.join(HERE, "cpudecode", "cpu_map")
DATA = os.path.join(HERE, "cpudecode", "cputestdata")


def corpus_walk(name):
    walk, msrs = {}, {}
    for item in ET.parse(os.path.join(DATA, "x86_64-cpuid-%s.xml" % name)).getroot():
        a = item.attrib
        if item.tag == "cpuid":
            walk[(int(a["eax_in"], 16), int(a["ecx_in"], 16))] = tuple(int(a[r], 16) for r in ("eax", "ebx", "ecx", "edx"))
        else:
            msrs[int(a["index"], 16)] = int(a["eax"], 16) | int(a["edx"], 16) << 32
    return walk, msrs


def expected_model(name):
    doc = ET.parse(os.path.join(DATA, "x86_64-cpuid-%s-host.xml" % name)).getroot()
    return doc.findtext("model"), tuple(f.get("name") for f in doc.findall("feature"))


def write_dump(path, walk):
    path.write_text(collector.format_walk([(leaf, sub, regs) for (leaf, sub), regs in sorted(walk.items())]))
    return str(path)


CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nmicrocode\t: 0xde\naddress sizes\t: 39 bits physical, 48 bits virtual\n\n"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(hostcpu.ENV_CPU_MAP, raising=False)


def reader(msr=None, tsc=None, asked=None):
    def read(want_msr, want_tsc):
        if asked is not None:
            asked.append((want_msr, want_tsc))
        return (msr if want_msr else None), (tsc if want_tsc else None)
    return read


# -- decode_host ------------------------------------------------------------------

def test_decode_host_with_the_msr_libvirt_reads(tmp_path):
    walk, msrs = corpus_walk("Cooperlake")
    asked = []
    model = hostcpu.decode_host(walk, reader(msrs[0x10a], None, asked), MAP_DIR, None, CPUINFO)
    assert (model.name, model.features) == expected_model("Cooperlake")
    assert asked == [(True, True)]  # arch-capabilities and invtsc in CPUID
    assert (model.microcode, model.maxphysaddr, model.signature, model.vendor) == (0xDE, 39, (6, 85, 11), "Intel")
    # Without the MSR (not readable), libvirt names another model.
    without = hostcpu.decode_host(walk, reader(), MAP_DIR, None, CPUINFO, use_cache=False)
    assert without.name == "Cascadelake-Server"


def test_tsc_only_with_invariant_tsc(tmp_path):
    tsc = Tsc(2_000_000_000, "yes")
    walk, _ = corpus_walk("Core2-E6850")  # no invtsc
    asked = []
    model = hostcpu.decode_host(walk, reader(None, tsc, asked), MAP_DIR, None, CPUINFO)
    assert model.tsc is None and asked == [(False, False)]
    walk, _ = corpus_walk("Xeon-E3-1245-v5")  # invtsc
    model = hostcpu.decode_host(walk, reader(None, tsc), MAP_DIR, None, CPUINFO)
    assert model.tsc == tsc


def test_no_map_no_model(tmp_path):
    walk, _ = corpus_walk("Core-i7-8700")
    model = hostcpu.decode_host(walk, reader(), str(tmp_path / "none"), None, CPUINFO)
    assert (model.name, model.features, model.tsc, model.cpu_map) == (None, (), None, None)
    assert (model.microcode, model.maxphysaddr) == (0xDE, 39)


@pytest.mark.parametrize("text, expected", [
    (CPUINFO, (0xDE, 39)),
    ("microcode\t: 0x0\naddress sizes\t: 46 bits physical\n", (None, 46)),
    ("microcode\t: 1234\n", (1234, None)),
    ("microcode\t: garbage\naddress sizes\t: lots\n", (None, None)),
    ("microcode\t: 0x1ffffffff\n", (None, None)),
    ("", (None, None)),
])
def test_cpuinfo_facts(text, expected):
    assert parse.cpuinfo_facts(text) == expected


# -- the disk cache ---------------------------------------------------------------

def copy_map(tmp_path):
    target = tmp_path / "map"
    shutil.copytree(MAP_DIR, target)
    return str(target)


def cache_files(tmp_path):
    directory = tmp_path / "cache" / "capsfast"
    return sorted(directory.iterdir()) if directory.is_dir() else []


def test_a_cache_hit_reads_no_map(tmp_path, monkeypatch):
    directory = copy_map(tmp_path)
    walk, _ = corpus_walk("Core-i7-8700")
    first = hostcpu.decode_host(walk, reader(), directory, None, CPUINFO)
    assert len(cache_files(tmp_path)) == 1
    from capsfast.cpu_map import x86_map as cpumap

    def no_load(*args):
        raise AssertionError("the map was read on a cache hit")

    monkeypatch.setattr(cpumap, "load", no_load)
    assert hostcpu.decode_host(walk, reader(), directory, None, CPUINFO) == first
    assert first.name == expected_model("Core-i7-8700")[0]


@pytest.mark.parametrize("change", ["map file", "walk", "msr", "corrupt", "foreign map", "truncated"])
def test_a_stale_or_broken_cache_is_never_served(tmp_path, change):
    directory = copy_map(tmp_path)
    walk, msrs = corpus_walk("Cooperlake")
    msr = msrs[0x10a]
    good = hostcpu.decode_host(walk, reader(msr), directory, None, CPUINFO)
    assert good.name == "Cooperlake"
    [cache] = cache_files(tmp_path)
    # The cache now says something false; only a served stale entry shows it.
    text = cache.read_text()
    cache.write_text(text.replace("model Cooperlake", "model Haswell"))
    assert hostcpu.decode_host(walk, reader(msr), directory, None, CPUINFO).name == "Haswell"  # served: key equal
    if change == "map file":
        path = os.path.join(directory, "x86_Cooperlake.xml")
        with open(path, "a") as f:
            f.write("\n")
    elif change == "walk":
        walk = dict(walk)
        walk[(0x80000008, 0)] = (walk[(0x80000008, 0)][0] ^ 1,) + walk[(0x80000008, 0)][1:]
    elif change == "msr":
        msr = 0  # e.g. a new microcode: the MSR is part of the key
    elif change == "corrupt":
        cache.write_bytes(b"\xff\x00garbage" * 100)
    elif change == "foreign map":
        cache.write_text(text.replace("model Cooperlake", "model Haswell").replace("map " + directory, "map /elsewhere"))
    elif change == "truncated":
        cache.write_text(text.replace("model Cooperlake", "model Haswell").split("\nwants_msr")[0])
    model = hostcpu.decode_host(walk, reader(msr), directory, None, CPUINFO)
    assert model.name != "Haswell"
    expected = "Cascadelake-Server" if change == "msr" else "Cooperlake"
    assert model.name == expected


def test_the_cpu_a_process_runs_on_does_not_change_the_key(tmp_path):
    # Leaf 1 EBX[31:24] is the APIC id of the CPU that ran CPUID (and leaf
    # 0xb EDX, AMD's 0x8000001e): a new process may run on another CPU.
    directory = copy_map(tmp_path)
    walk, _ = corpus_walk("EPYC-7502-32-Core")
    hostcpu.decode_host(walk, reader(), directory, None, CPUINFO)
    [cache] = cache_files(tmp_path)
    cache.write_text(cache.read_text().replace("model EPYC-Rome", "model Marker"))
    other_cpu = dict(walk)
    a, b, c, d = other_cpu[(1, 0)]
    other_cpu[(1, 0)] = (a, b ^ 0x2F000000, c, d)
    other_cpu[(0x8000001E, 0)] = (0x2F, 0x17, 0x1, 0)
    assert hostcpu.decode_host(other_cpu, reader(), directory, None, CPUINFO).name == "Marker"  # a hit
    # A map whose feature reads such a bit keeps it in the key.
    with open(os.path.join(directory, "x86_features.xml")) as f:
        text = f.read()
    with open(os.path.join(directory, "x86_features.xml"), "w") as f:
        f.write(text.replace("</cpus>", "<feature name='apic-id-7'><cpuid eax_in='0x01' ebx='0x80000000'/></feature></cpus>"))
    hostcpu.decode_host(walk, reader(), directory, None, CPUINFO)
    cache.write_text(cache.read_text().replace("model EPYC-Rome", "model Marker"))
    assert hostcpu.decode_host(other_cpu, reader(), directory, None, CPUINFO).name == "EPYC-Rome"  # a miss


def test_an_unwritable_cache_is_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    walk, _ = corpus_walk("Core-i7-8700")
    assert hostcpu.decode_host(walk, reader(), MAP_DIR, None, CPUINFO).name == expected_model("Core-i7-8700")[0]


# -- the device -------------------------------------------------------------------

def test_kvm_host_cpu_never_opens_another_device():
    got = _native.kvm_host_cpu("/dev/null", 0x10A, True)
    assert got.opened.code == "not_kvm_device" and got.tsc_khz is None and got.msr_value is None


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="needs a usable /dev/kvm")
def test_kvm_host_cpu_reads_the_tsc_as_the_collector_does():
    got = _native.kvm_host_cpu("/dev/kvm", None, True)
    assert got.opened.ok and got.tsc.ok and got.tsc_khz > 0 and got.tsc_scaling in (0, 1)
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        tsc = collector._kvm_tsc(fd)
        msr = collector._kvm_msr(fd)
    finally:
        os.close(fd)
    assert tsc == {"frequency": got.tsc_khz * 1000, "scaling": "yes" if got.tsc_scaling else "no"}
    assert msr == _native.kvm_host_cpu("/dev/kvm", 0x10A, False).msr_value


def test_the_collector_records_what_the_live_source_tells_the_decode():
    from capsfast.sources.live import Live

    live = Live("x86_64")
    walk = live.walk()
    if not walk:
        pytest.skip("no CPUID here")
    # The CPUID bits libvirt's map gives arch-capabilities and invtsc.
    want_msr = bool(walk.get((7, 0), (0, 0, 0, 0))[3] >> 29 & 1)
    want_tsc = bool(walk.get((0x80000007, 0), (0, 0, 0, 0))[3] >> 8 & 1)
    msr, tsc = live.cpu_device(want_msr, want_tsc)
    entries = [(leaf, sub, regs) for (leaf, sub), regs in walk.items()]
    assert collector.host_cpu("/dev/kvm", entries) == {
        "arch_capabilities": None if msr is None else "0x%x" % msr,
        "tsc": None if tsc is None else {"frequency": tsc.frequency, "scaling": tsc.scaling}}


# -- the CLI, end to end ----------------------------------------------------------

def fake_host(tmp_path, walk, cpuinfo=CPUINFO):
    """A CPUID dump of ``walk`` and a root holding only /proc/cpuinfo:
    (dump path, root)."""
    dump = write_dump(tmp_path / "dump.txt", walk)
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cpuinfo").write_text(cpuinfo)
    return dump, root


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "capsfast"] + list(args), capture_output=True, text=True,
                          timeout=120, env=env)


def test_cpu_map_option_and_environment(tmp_path):
    dump, root = fake_host(tmp_path, corpus_walk("Core-i7-8700")[0])
    base = ["capabilities", "--root", str(root), "--cpuid-dump", dump, "--arch", "x86_64"]
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop(hostcpu.ENV_CPU_MAP, None)
    plain = cli(*base, env=env)
    assert plain.returncode == 0 and "<model>" not in plain.stdout
    assert '<microcode version="222"/>' in plain.stdout
    named = cli(*base, "--cpu-map", MAP_DIR, env=env)
    model, features = expected_model("Core-i7-8700")
    assert "<model>%s</model>" % model in named.stdout
    assert [line.strip() for line in named.stdout.splitlines() if "<feature name" in line] == [
        '<feature name="%s"/>' % f for f in features]
    assert cli(*base, env=dict(env, CAPSFAST_CPU_MAP=MAP_DIR)).stdout == named.stdout
    # The root's own copy is found without being named.
    shutil.copytree(MAP_DIR, root / "usr" / "share" / "libvirt" / "cpu_map")
    assert cli(*base, env=env).stdout == named.stdout
    doc = cli(*base, "--json", env=env).stdout
    assert '"name": "%s"' % model in doc


def test_a_malformed_map_is_one_line_and_status_2(tmp_path):
    walk, _ = corpus_walk("Core-i7-8700")
    dump = write_dump(tmp_path / "dump.txt", walk)
    directory = copy_map(tmp_path)
    with open(os.path.join(directory, "x86_Skylake-Client.xml"), "w") as f:
        f.write("<cpus><model name='Skylake-Client'>")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = cli("capabilities", "--cpuid-dump", dump, "--cpu-map", directory, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("capsfast: CPU map ") and done.stderr.count("\n") == 1, done.stderr
    assert "x86_Skylake-Client.xml is not well-formed" in done.stderr
    # check never decodes: a bad map does not fail it, text or JSON.
    assert cli("check", "--cpuid-dump", dump, "--cpu-map", directory, env=env).returncode in (0, 1)
    checked = cli("check", "--json", "--cpuid-dump", dump, "--cpu-map", directory, env=env)
    assert checked.returncode in (0, 1), checked.stderr
    import json

    assert json.loads(checked.stdout)["host"]["cpu_model"] is None


def test_check_names_a_missing_map_in_one_line(tmp_path):
    """A host whose root has no CPU map: check says so once (INFO)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop(hostcpu.ENV_CPU_MAP, None)
    dump, root = fake_host(tmp_path, corpus_walk("Core-i7-8700")[0])
    base = ["check", "--root", str(root), "--cpuid-dump", dump, "--arch", "x86_64"]
    done = cli(*base, env=env)
    lines = [line for line in done.stdout.splitlines() if "CPU map" in line]
    assert len(lines) == 1 and "INFO" in lines[0] and "no CPU model" in lines[0], done.stdout
    assert [line for line in cli(*base, "--cpu-map", MAP_DIR, env=env).stdout.splitlines() if "CPU map" in line] == []


def test_a_named_map_that_is_not_there_is_bad_input(tmp_path):
    """--cpu-map or CAPSFAST_CPU_MAP naming no directory is a typo to
    report (one line, status 2), not a host without a model."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop(hostcpu.ENV_CPU_MAP, None)
    missing = str(tmp_path / "none")
    for args, extra in ((["capabilities", "--cpu-map", missing], {}),
                        (["check", "--cpu-map", missing], {}),
                        (["capabilities"], {hostcpu.ENV_CPU_MAP: missing}),
                        (["capabilities", "--format", "json"], {hostcpu.ENV_CPU_MAP: missing})):
        done = cli(*args, env=dict(env, **extra))
        assert done.returncode == 2 and done.stdout == "", (args, done.stdout)
        assert done.stderr.startswith("capsfast: CPU map %s" % missing) and done.stderr.count("\n") == 1, done.stderr
    with pytest.raises(CapsfastError):
        capsfast.probe(cpu_map=missing)


def test_record_then_replay_renders_the_same_host(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert cli("record", str(tmp_path / "rec"), env=env).returncode == 0
    live = cli("capabilities", env=env)
    replayed = cli("capabilities", "--replay", str(tmp_path / "rec"), env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == live.stdout
    import json

    scenario = json.loads((tmp_path / "rec" / "scenario.json").read_text())
    assert set(scenario["cpu_model"]) == {"arch_capabilities", "tsc"}
    if os.path.isdir(hostcpu.DEFAULT_CPU_MAP):
        assert (tmp_path / "rec" / "root" / hostcpu.DEFAULT_CPU_MAP.lstrip("/") / "index.xml").exists()
        assert "<model>" in live.stdout


def test_an_old_recording_replays_with_its_roots_map_if_any(tmp_path):
    # tests/hosts/intel-enabled predates cpu_model: no map, no MSR, no TSC.
    rec = tmp_path / "rec"
    shutil.copytree(os.path.join(HERE, "hosts", "intel-enabled"), rec)
    assert capsfast.probe(replay=str(rec)).cpu_model.name is None
    shutil.copytree(MAP_DIR, rec / "root" / "usr" / "share" / "libvirt" / "cpu_map")
    model = capsfast.probe(replay=str(rec)).cpu_model
    assert model.name is not None and model.tsc is None
    assert model.cpu_map == str(rec / "root") + hostcpu.DEFAULT_CPU_MAP


def test_a_malformed_scenario_cpu_model_is_named(tmp_path):
    import json

    rec = tmp_path / "rec"
    shutil.copytree(os.path.join(HERE, "hosts", "intel-enabled"), rec)
    doc = json.loads((rec / "scenario.json").read_text())
    doc["cpu_model"] = {"arch_capabilities": "zz", "tsc": None}
    (rec / "scenario.json").write_text(json.dumps(doc))
    with pytest.raises(CapsfastError, match="cpu_model: arch_capabilities 'zz'"):
        capsfast.probe(replay=str(rec))


def test_check_and_watch_never_decode(monkeypatch):
    from capsfast import watch
    from capsfast.render import check as report
    from capsfast.model import cpu_model_pending

    host = capsfast.probe(refresh=True)
    report.as_json(host)
    report.as_text(host)
    watch.flat(host)
    assert cpu_model_pending(host)


def test_cpu_model_is_lazy():
    from capsfast.model import cpu_model_pending

    host = capsfast.probe(refresh=True)
    assert cpu_model_pending(host)
    host.kvm_usable if hasattr(host, "kvm_usable") else host.kvm
    assert cpu_model_pending(host)
    host.cpu_model
    assert not cpu_model_pending(host)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become uid 65534")
def test_unprivileged_no_device_no_cache_still_a_model(tmp_path):
    """As nobody: /dev/kvm (root's 0600 here) gives no TSC, a home without
    a cache directory gives no cache; the model is still decoded."""
    from forked import in_child

    import tempfile
    from pathlib import Path

    walk, _ = corpus_walk("Xeon-E3-1245-v5")  # invariant TSC
    shared = Path(tempfile.mkdtemp(prefix="capsfast-nobody-"))  # pytest's own tmp is root's alone
    try:
        os.chmod(shared, 0o755)
        dump = write_dump(shared / "dump.txt", walk)
        cpu_map = shutil.copytree(MAP_DIR, shared / "map")
        for path in [shared / "dump.txt", cpu_map] + list(cpu_map.iterdir()):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

        def work():
            os.environ["XDG_CACHE_HOME"] = "/nonexistent/cache"
            model = capsfast.probe(cpuid=dump, cpu_map=str(cpu_map)).cpu_model
            live = capsfast.probe(cpu_map=str(cpu_map)).cpu_model
            return (model.name, model.features, model.tsc), (live.tsc, os.access("/dev/kvm", os.R_OK | os.W_OK))

        answer = in_child(work, user=(65534, 65534))
    finally:
        shutil.rmtree(shared)
    assert answer[0] == "ok", answer
    (name, features, tsc), (live_tsc, kvm_open) = answer[1]
    assert (name, features) == expected_model("Xeon-E3-1245-v5")
    assert tsc is None  # a dump never asks the device
    if not kvm_open:
        assert live_tsc is None  # the device does not open for nobody: no counter, no error


def test_cpuinfo_is_read_once_for_the_kernel_flags_and_the_model(tmp_path, monkeypatch):
    """Both lazy parts read the first processor's block: the probe's own
    read of it serves them, and the source reads it no more."""
    from capsfast.sources.base import Source

    walk, _ = corpus_walk("Core-i7-8700")
    walk = {k: v for k, v in walk.items()}
    eax, ebx, ecx, edx = walk[(1, 0)]
    walk[(1, 0)] = (eax, ebx, ecx & ~(1 << 5), edx)  # no vmx: the probe leaves the kernel's flags unread
    dump, root = fake_host(tmp_path, walk, CPUINFO.replace("\n\n", "\nflags\t\t: fpu pae lm\n\n"))
    calls = []
    read = Source.files
    monkeypatch.setattr(Source, "files", lambda self, plan, depends={}: calls.append([e[0] for e in plan])
                        or read(self, plan, depends))
    host = capsfast.probe(root=str(root), cpuid=dump, arch="x86_64")
    assert host.kernel_flags == ("fpu", "pae", "lm") and host.cpu_model.microcode == 222
    host.security  # the platform part wants the block too
    assert calls and not any("cpuinfo" in keys for keys in calls)

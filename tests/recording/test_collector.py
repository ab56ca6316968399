"""The collector (``capsfast.recording.collector``), the one writer of recordings: standalone,
on old Pythons, its CPUID walk, the KVM device's steps, the files of a plan."""
import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from capsfast.recording import collector
from capsfast.recording import remote
from capsfast.constants import KVM_DEVICE



# ------------------------------------------------------------------ the collector


def test_collector_is_standalone_and_old_python_syntax():
    source = open(collector.__file__).read()
    tree = ast.parse(source, feature_version=(3, 6))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            modules.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.JoinedStr):
            raise AssertionError("an f-string: fine on 3.6, but the package style is %")
    assert "capsfast" not in modules
    if hasattr(sys, "stdlib_module_names"):
        assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert "from __future__" not in source


def test_remote_command_cannot_import_an_installed_capsfast(tmp_path):
    # Here capsfast is importable (installed, or editable); with the flags
    # the remote command uses it is not, so neither is it for the collector.
    flags = remote.REMOTE_COMMAND.split()[1:-1]
    assert flags == ["-I", "-S"]
    plain = subprocess.run([sys.executable, "-c", "import capsfast"], cwd=tmp_path, capture_output=True)
    isolated = subprocess.run([sys.executable] + flags + ["-c", "import capsfast"], cwd=tmp_path,
                              capture_output=True)
    if plain.returncode != 0:
        pytest.skip("capsfast is not importable from outside the checkout here")
    assert isolated.returncode != 0


def test_script_carries_the_plan_and_runs_locally(tmp_path):
    text = remote.script(remote.plan("here", deep=False))
    proc = subprocess.run([sys.executable, "-I", "-S", "-"], input=text, capture_output=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    names = tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r|").getnames()
    assert "scenario.json" in names and "root/proc/cpuinfo" in names


def old_pythons():
    """Interpreters older than the package's own minimum (3.9), as remote
    hosts have them: python3.6 to python3.8 on the PATH, or pyenv's."""
    found = {}
    candidates = [shutil.which("python3.%d" % minor) for minor in (6, 7, 8)]
    if shutil.which("pyenv"):
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        for version in versions:
            if version.startswith(("3.6.", "3.7.", "3.8.")):
                prefix = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True).stdout.strip()
                candidates.append(os.path.join(prefix, "bin", "python3") if prefix else None)
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() < "3.9":
            found.setdefault(probe.stdout.strip(), candidate)
    return sorted(found.items())


def test_collector_runs_on_old_pythons(tmp_path, own_tmp):
    pythons = old_pythons()
    if not pythons:
        pytest.skip("no Python 3.6 to 3.8 here")
    text = remote.script(remote.plan("here"))
    for version, python in pythons:
        proc = subprocess.run([python, "-I", "-S", "-"], input=text, capture_output=True, cwd=tmp_path, timeout=60)
        assert proc.returncode == 0 and proc.stderr == b"", (version, proc.stderr)
        with remote.read_stream(io.BytesIO(proc.stdout), version) as directory:
            with open(os.path.join(directory, "scenario.json")) as f:
                assert json.load(f)["format"] == 1


def test_collector_without_plan_fails_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-S", collector.__file__], capture_output=True, cwd=tmp_path)
    assert proc.returncode == remote.COLLECTOR_FAILED and proc.stdout == b""
    assert proc.stderr.decode().count("\n") == 1


def fake_cpu(table, default=(0, 0, 0, 0)):
    return lambda leaf, sub: table.get((leaf, sub), table.get((leaf, None), default))


def test_walk_follows_libvirt():
    table = {
        (0, 0): (0x17, 0, 0, 0),
        (1, 0): (0, 0, 1 << 31, 0),                 # the hypervisor bit
        (4, 0): (0x121, 0, 0, 0), (4, 1): (0x122, 0, 0, 0), (4, 2): (0x143, 0, 0, 0),  # then type 0
        (7, 0): (1, 1 << 2, 0, 0), (7, 1): (0, 5, 0, 0),                               # SGX
        (0xB, 0): (1, 2, 0x100, 0), (0xB, 1): (4, 8, 0x201, 0),                        # then ECX[15:8] = 0
        (0xD, 0): (0b111, 0, 0, 1), (0xD, 1): (0, 0, 1 << 8, 0),                       # 2, 8, 32
        (0xF, 0): (0, 0, 0, 0b10),
        (0x10, 0): (0, 0b110, 0, 0),
        (0x12, 0): (1, 0, 0, 0), (0x12, 2): (1, 0, 0, 0), (0x12, 3): (1, 0, 0, 0),    # 4: EAX[3:0] = 0
        (0x14, 0): (2, 0, 0, 0),
        (0x17, 0): (2, 0, 0, 0),                    # EAX < 3: skipped
        (0x40000000, 0): (0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
        (0x80000000, 0): (0x80000001, 0, 0, 0),
    }
    walked = collector.walk(fake_cpu(table))
    subs = {}
    for leaf, sub, _regs in walked:
        subs.setdefault(leaf, []).append(sub)
    assert subs[4] == [0, 1, 2, 3]
    assert subs[7] == [0, 1]
    assert subs[0xB] == [0, 1]
    assert subs[0xD] == [0, 1, 2, 8, 32]
    assert subs[0xF] == [0, 1]
    assert subs[0x10] == [0, 1, 2]
    assert subs[0x12] == [0, 1, 2, 3]
    assert subs[0x14] == [0, 1, 2]
    assert 0x17 not in subs
    assert subs[0x40000000] == [0] and subs[0x40000001] == [0]
    assert subs[0x80000000] == [0] and subs[0x80000001] == [0]
    # libvirt's order: basic, extended, then the hypervisor's; the dump sorts them.
    order = [leaf >> 28 for leaf, _s, _r in walked]
    assert order == sorted(order, key=lambda top: {0: 0, 8: 1, 4: 2}[top])
    lines = collector.format_walk(walked).splitlines()[1:]
    assert lines == sorted(lines)
    # The dump reads back as the five leaves capsfast decodes.
    from capsfast.parts.core import parse

    leaves = parse.leaves_from_dump(collector.format_walk(walked))
    assert leaves[parse.HV0][1] == 0x4B4D564B


def test_walk_without_sgx_or_hypervisor():
    table = {(0, 0): (0x12, 0, 0, 0), (0x12, 0): (1, 0, 0, 0), (0x40000000, 0): (0x40000005, 0, 0, 0),
             (0x80000000, 0): (5, 0, 0, 0)}   # a CPU without extended leaves echoes a basic one
    leaves = {leaf for leaf, _s, _r in collector.walk(fake_cpu(table))}
    # 0xb with ECX[15:8] = 0 has no valid subleaf; 0x12 needs SGX; the
    # extended range keeps its base leaf.
    assert leaves == set(range(0x13)) - {0xB, 0x12} | {0x80000000}


def all_ones(leaf, sub):
    return (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def test_walk_is_bounded_whatever_the_cpu_says():
    reads = []

    def hostile(leaf, sub):
        reads.append((leaf, sub))
        return all_ones(leaf, sub)

    walked = collector.walk(hostile)
    # Every bound reached at once, and no more.
    assert len(walked) == collector.MAX_LINES
    assert all(sub < collector.MAX_SUBLEAVES and leaf & 0x3FFFFFFF < collector.MAX_RANGE
               for leaf, sub, _regs in walked)
    assert len(reads) <= collector.MAX_LINES + 8
    assert len(collector.format_walk(walked)) < remote.MAX_DUMP


def test_cpuid_dump_equals_the_c_walk():
    from capsfast import _native

    if not hasattr(_native, "cpuid_walk"):
        pytest.skip("the C module has no CPUID walk")
    dump = collector.cpuid_dump()
    if dump is None:
        pytest.skip("no readable /dev/cpu/0/cpuid here")
    if os.sched_getaffinity(0) != {0}:
        # The C walk runs on whichever CPU this thread is on: pin it to CPU 0.
        pinned = subprocess.run(
            [sys.executable, "-c", "import os; os.sched_setaffinity(0, {0}); from capsfast import _native; "
             "from capsfast.recording import collector; print(collector.format_walk(_native.cpuid_walk()), end='')"], capture_output=True, text=True)
        assert pinned.returncode == 0, pinned.stderr
        assert dump == pinned.stdout
    else:
        assert dump == collector.format_walk(_native.cpuid_walk())


def c_steps(device, path):
    """The C core's KvmDevice as the recording spells its steps, with the
    node's group by name (the hint for a user who may not open it names
    it), read here without capsfast."""
    import grp

    def spell(outcome):
        return outcome.code if outcome.code in ("ok", "not_tried") else "%s: %s" % (outcome.code, outcome.reason)

    steps = {"mode": oct(device.mode) if device.stat.ok else None, "stat": spell(device.stat),
             "access": spell(device.access), "open": spell(device.open), "api_call": spell(device.api_call),
             "api_version": device.api_version, "create_vm": spell(device.create_vm)}
    if device.stat.ok:
        steps["group"] = grp.getgrgid(os.stat(path).st_gid).gr_name
    return steps


@pytest.mark.parametrize("deep", [False, True])
def test_kvm_device_steps_equal_the_c_core(deep):
    from capsfast import _native

    device = _native.Batch(KVM_DEVICE, []).run(False, deep).kvm
    assert collector.kvm_device(KVM_DEVICE, deep) == c_steps(device, KVM_DEVICE)


def test_kvm_device_other_char_device_is_not_opened():
    from capsfast import _native

    # /dev/null is 1:3: looked at, never opened, as C does.
    observed = collector.kvm_device("/dev/null", False)
    assert observed["open"] == "not_kvm_device: No such device" and observed["api_call"] == "not_tried"
    assert observed == c_steps(_native.Batch("/dev/null", []).run().kvm, "/dev/null")


def test_kvm_device_not_a_device(tmp_path):
    (tmp_path / "kvm").write_text("")
    observed = collector.kvm_device(str(tmp_path / "kvm"), True)
    assert observed["stat"] == "ok" and observed["open"] == "not_tried" and observed["api_version"] is None
    missing = collector.kvm_device(str(tmp_path / "nothing"), False)
    assert missing["stat"] == "absent: No such file or directory" and missing["mode"] is None


def test_search_path_holds_only_recordable_directories():
    assert collector.search_path("/usr/../bin://usr/local/bin/:.:bin::/x\n:/", "/bin") == "/bin:/usr/local/bin:/"
    assert collector.search_path(None, "/bin:/usr/bin") == "/bin:/usr/bin"


def test_emulators_in_odd_path_entries(tmp_path):
    (tmp_path / "bin").mkdir()
    for name in ("qemu-system-x86_64", "qemu-system-bad\nname"):
        (tmp_path / "bin" / name).write_text("")
        (tmp_path / "bin" / name).chmod(0o755)
    odd = "%s/../%s/bin/" % (tmp_path, tmp_path.name)
    found = collector.emulators(collector.search_path(odd, ""), "qemu-system-", "/nonexistent")
    assert found == [str(tmp_path / "bin" / "qemu-system-x86_64")]


def test_plan_files_never_open_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert collector.probe_file(str(fifo), "read", 0, 4096).err != 0
    assert collector.probe_file(str(tmp_path), "read", 0, 4096).err != 0
    (tmp_path / "big").write_bytes(b"x" * 10000)
    assert collector.probe_file(str(tmp_path / "big"), "read", 0, 4096).data == b"x" * 4096

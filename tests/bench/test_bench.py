"""``capsfast bench``: every field is there and consistent.  No time is
judged here: the figures depend on the machine and its load."""
import json
import os
import re
import subprocess
import sys
import threading

import pytest

import capsfast.bench as bench
from capsfast.bench import alternatives, fixtures, report
from capsfast.parts.core import read as facts
from capsfast import host as probing

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))

RESULT_KEYS = {"key", "what", "median_us", "low_us", "high_us", "runs", "note"}
ALWAYS_MEASURED = (
    "import", "first_probe", "first_probe_guests", "floor_cold", "render_json_first", "probe_refresh",
    "emulators_repeat", "probe_cached", "kvm_usable_cached", "render_json_cached", "crossing_empty",
    "syscalls_devices", "fake_root_2_cpus", "fake_root_1024_cpus", "process_python_pass", "process_check_q",
    "process_capabilities_json", "process_capabilities_libvirt", "process_capabilities_machines",
    "first_answer_cache_warm", "first_answer_cache_cold",
)
MAYBE_MEASURED = (
    "render_libvirt_first", "render_libvirt_cached", "cpuid_one", "cpuid_walk", "syscalls_cpu_files",
    "alt_cpuinfo_python", "alt_virsh", "alt_libvirt_python", "alt_kvm_ok", "alt_virt_host_validate", "alt_py_cpuinfo",
    "remote_query", "replay_directory", "replay_stream", "remote_ssh_floor",
    "domcaps_cold", "alt_virsh_domcaps_cold", "domcaps_warm", "alt_virsh_domcaps",
    "domcaps_repeat", "domcaps_first", "alt_libvirt_python_domcaps",
)
TIME_UNITS = {"us", "ms", "s", "ns", "seconds", "microseconds"}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PROJECT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture(scope="module")
def quick_json():
    """``--json``, stderr not a terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "capsfast", "bench", "--quick", "--json"],
        capture_output=True, text=True, env=_env(), timeout=600,
    )
    assert done.returncode == 0, done.stderr
    # stderr is not a terminal here: no progress lines.
    assert done.stderr == ""
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def quick_format_json():
    """``--format json``, stderr a terminal: the document and what the
    progress display wrote."""
    import pty

    master, slave = pty.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "capsfast", "bench", "--quick", "--format", "json"],
            stdout=subprocess.PIPE, stderr=slave, env=_env(),
        )
    finally:
        os.close(slave)
    shown = []

    def drain():  # the terminal must be read meanwhile, or the child blocks on it
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = child.communicate(timeout=600)
    finally:
        reader.join(10)
        os.close(master)
    assert child.returncode == 0, b"".join(shown).decode(errors="replace")
    return json.loads(stdout), b"".join(shown).decode(errors="replace")


def test_quick_json_has_every_field(quick_json):
    out = quick_json
    assert out["schema_version"] == 1 and out["quick"] is True
    assert set(out["machine"]) >= {"cpus", "kernel", "arch", "python", "cpu_model", "load_average",
                                   "load_average_after"}
    results = {r["key"]: r for r in out["results"]}
    for key in ALWAYS_MEASURED:
        assert key in results, key
        assert results[key]["runs"] > 0, key
    for key in MAYBE_MEASURED:
        assert key in results, key
        # Not measured means a reason is given.
        assert results[key]["runs"] > 0 or results[key]["note"], key
    for r in out["results"]:
        assert set(r) == RESULT_KEYS, r["key"]
        assert r["what"]
        if r["runs"]:
            assert r["low_us"] <= r["median_us"] <= r["high_us"], r["key"]
    assert set(out["alternatives"]) == {k for k in MAYBE_MEASURED if k.startswith("alt_")} | {"remote_query"}
    assert isinstance(out["cpuid_first_probe"], int) and out["cpuid_first_probe"] >= 0
    walk = out["cpuid_walk"]
    assert set(walk) == {"entries", "cpuid_instructions", "ratio_to_one_cpuid", "run_by_first_probe"}
    assert isinstance(walk["entries"], int) and isinstance(walk["cpuid_instructions"], int)
    assert walk["ratio_to_one_cpuid"] is None or walk["ratio_to_one_cpuid"] > 0
    assert walk["run_by_first_probe"] in (True, False)
    assert isinstance(out["modules_imported_by_first_probe"], list)
    assert out["floor_first_probe_us"] > 0
    assert out["targets"]
    for target in out["targets"]:
        assert set(target) == {"target", "value", "limit", "unit", "met"}
        assert target["met"] in (True, False, None)
        assert target["met"] is None or target["met"] == (target["value"] <= target["limit"])


def test_no_target_in_absolute_time(quick_json):
    """Targets are ratios to a figure of the same run, or counts: an
    absolute time does not carry from one machine to another."""
    for target in quick_json["targets"]:
        assert target["unit"] not in TIME_UNITS, target
        if target["unit"] == "x":
            assert " / " in target["target"], target  # says what it is a ratio to
        else:
            assert isinstance(target["limit"], int), target  # a count


def test_default_command_against_virsh(quick_json):
    """capsfast capabilities is set against virsh's, when virsh ran."""
    results = {r["key"]: r for r in quick_json["results"]}
    rows = [t for t in quick_json["targets"] if t["target"].startswith("capsfast capabilities / virsh")]
    assert len(rows) == 1
    if results["alt_virsh"]["runs"]:
        assert rows[0]["value"] is not None
    else:
        assert rows[0]["met"] is None and results["alt_virsh"]["note"]


def test_virsh_in_the_same_loop(monkeypatch):
    """With a virsh to run, it is timed in the loop of the capsfast
    processes and set against capsfast capabilities.  A stand-in runs
    here: the tests never talk to (or start) a libvirt daemon."""
    monkeypatch.setattr(alternatives, "_virsh_command", lambda: ([sys.executable, "-c", "pass"], None))
    b = bench.Bench(quick=True, slow=False)
    alternatives.whole_processes(b)
    assert len(b.results["alt_virsh"].samples) == b.process_runs
    assert b.alternatives == ["alt_virsh"]
    rows = [t for t in report.targets(b) if "virsh" in t["target"] and "domcapabilities" not in t["target"]]
    assert len(rows) == 2  # capabilities, and capabilities --machines with its caches warm
    assert all(row["value"] is not None and row["met"] in (True, False) for row in rows)


def test_domcapabilities_paired_with_virsh(monkeypatch):
    """With a domcapabilities command and a virsh to run, each capsfast
    process is paired with a virsh one and the two are set against each
    other; stand-ins run here (the tests start no daemon)."""
    from capsfast.bench import domcaps

    monkeypatch.setattr(domcaps, "has_command", lambda: True)
    monkeypatch.setattr(domcaps, "capsfast_command", lambda: [sys.executable, "-c", "pass"])
    monkeypatch.setattr(domcaps, "_virsh", lambda: ([sys.executable, "-c", "pass"], None))
    b = bench.Bench(quick=True, slow=False)
    domcaps.domcaps_warm(b)
    assert len(b.results["domcaps_warm"].samples) == len(b.results["alt_virsh_domcaps"].samples) == b.process_runs
    rows = [t for t in report.targets(b) if "virsh domcapabilities" in t["target"]]
    assert len(rows) == 1 and rows[0]["value"] is not None and rows[0]["met"] in (True, False)


def test_quick_json_behaviour_figures(quick_json):
    """The figures that are facts, not times."""
    # import capsfast pulls in none of the expensive modules.
    assert quick_json["import_forbidden_modules"] == []
    scaling = quick_json["cpuinfo_scaling"]
    assert scaling["cpus_1024"]["file_bytes"] > 400 * scaling["cpus_2"]["file_bytes"]
    assert scaling["cpus_1024"]["bytes_read"] == scaling["cpus_2"]["bytes_read"]
    if os.uname().machine in ("x86_64", "i686") and os.path.exists("/proc/cpuinfo"):
        # Leaves 0, 1, 0x80000000, maybe 0x80000001 and 0x40000000.
        assert 3 <= quick_json["cpuid_first_probe"] <= 5
        # The full walk: every leaf and subleaf, plus the subleaves it reads
        # and drops; never run by a probe.
        walk = quick_json["cpuid_walk"]
        assert walk["entries"] >= 3 and walk["cpuid_instructions"] >= walk["entries"]
        assert walk["run_by_first_probe"] is False
        rows = [t for t in quick_json["targets"] if "never the full walk" in t["target"]]
        assert len(rows) == 1 and rows[0]["met"] is True


def _shape(value):
    """The keys of a document, recursively; lists of rows by their keys."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_shape(v) for v in value]
    return "list" if isinstance(value, list) else "leaf"  # values differ from run to run


def test_format_json_and_json_give_the_same_document(quick_json, quick_format_json):
    doc, _shown = quick_format_json
    assert _shape(doc) == _shape(quick_json)
    assert [r["key"] for r in doc["results"]] == [r["key"] for r in quick_json["results"]]
    assert [t["target"] for t in doc["targets"]] == [t["target"] for t in quick_json["targets"]]


def test_progress_counts_the_steps_run(quick_format_json):
    """The display says [k/N] once per step, N the number of steps."""
    _doc, shown = quick_format_json
    counts = [(int(k), int(n)) for k, n in re.findall(r"capsfast bench \[(\d+)/(\d+)\] ", shown)]
    steps = len(bench.STEPS)
    assert counts == [(k, steps) for k in range(1, steps + 1)]
    labels = re.findall(r"capsfast bench \[\d+/\d+\] ([^\r\x1b]*)", shown)
    assert labels == [label for label, _measure in bench.STEPS]
    # The last thing written clears the line.
    assert shown.endswith("\r\x1b[K")


def test_steps_are_registered_once_in_order():
    names = [measure.__name__ for _label, measure in bench.STEPS]
    assert len(set(names)) == len(names)
    assert names[0] == "import_capsfast" and names[-1] == "whole_processes"


def test_text_report_from_the_same_document(quick_json):
    text = report.format_text(quick_json)
    assert "targets" in text and "alternatives" in text
    for r in quick_json["results"]:
        assert r["what"] in text
    for t in quick_json["targets"]:
        assert t["target"] in text


def test_cpuinfo_read_stops_after_the_first_processor(tmp_path):
    """1024 processors cost the probe no more bytes than 2."""
    small, small_size = fixtures.fake_cpuinfo_root(str(tmp_path), 2)
    big, big_size = fixtures.fake_cpuinfo_root(str(tmp_path), 1024)
    first_block = open(os.path.join(big, "proc", "cpuinfo"), "rb").read().split(b"\n\n")[0]
    read_small, read_big = probing.cpuinfo_bytes_read(small), probing.cpuinfo_bytes_read(big)
    assert big_size > 1000 * len(first_block)
    assert read_big == read_small
    assert len(first_block) < read_big <= facts.CPUINFO_BLOCK
    import capsfast

    # And the facts are the same.
    assert capsfast.probe(root=big, arch="x86_64") == capsfast.probe(root=small, arch="x86_64")


def test_bad_flag_is_one_line():
    from capsfast.cli import main

    done = subprocess.run(
        [sys.executable, "-c", "import sys; from capsfast.cli import main; sys.exit(main(['bench', '--nope']))"],
        capture_output=True, text=True, cwd=PROJECT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("capsfast: ") and done.stderr.count("\n") == 1
    assert main(["bench", "--help"]) == 0


def test_import_capsfast_does_not_import_bench():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, capsfast; capsfast.probe(); print('capsfast.bench' in sys.modules)"],
        capture_output=True, text=True, env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_fail_on_missed_gates_the_exit_status():
    """CI can gate on the targets: a missed one is exit status 1 and one
    line on stderr naming it; the report is printed all the same."""
    done = subprocess.run(
        [sys.executable, "-m", "capsfast", "bench", "--quick", "--json", "--fail-on-missed"],
        capture_output=True, text=True, env=_env(), timeout=600,
    )
    doc = json.loads(done.stdout)
    missed = [t["target"] for t in doc["targets"] if t["met"] is False]
    if missed:
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("capsfast: bench: %d of %d targets missed: " % (
            len(missed), len(doc["targets"]))) and done.stderr.count("\n") == 1, done.stderr
        assert missed[0] in done.stderr
    else:
        assert done.returncode == 0 and done.stderr == "", done.stderr


def test_exit_status_counts_only_measured_misses(quick_json):
    """Without --fail-on-missed a run is 0 whatever it measured; with it,
    a target that was missed is 1 and one that could not be measured
    here (n/a) is not a miss."""
    def with_targets(*met):
        return dict(quick_json, targets=[dict(quick_json["targets"][0], met=m) for m in met])

    assert bench.exit_status(with_targets(True, None), True) == 0
    assert bench.exit_status(with_targets(True, False), True) == 1
    assert bench.exit_status(with_targets(False), False) == 0
    assert bench.missed(with_targets(True, False, None)) == [quick_json["targets"][0]["target"]]


FAKE_LIBVIRT = '''
class libvirtError(Exception):
    pass
def registerErrorHandler(handler, ctx):
    pass
class _Conn:
    def getCapabilities(self):
        return "<capabilities/>"
    def close(self):
        pass
def openReadOnly(uri):
    if uri != "qemu:///system":
        raise libvirtError("unexpected URI")
    return _Conn()
'''


def test_libvirt_python_peer_borrows_the_interpreter_that_has_it(tmp_path, monkeypatch):
    """A venv without the binding times it in the next interpreter that has
    it (Debian's python3-libvirt serves the system python3).  Stand-ins
    here: the tests never talk to a libvirt daemon."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "libvirt.py").write_text(FAKE_LIBVIRT)
    without = tmp_path / "python-without"
    # No PYTHONPATH, no site-packages: no libvirt.
    without.write_text("#!/bin/sh\nexec %s -I -S \"$@\"\n" % sys.executable)
    with_it = tmp_path / "python-with"
    with_it.write_text("#!/bin/sh\nPYTHONPATH=%s exec %s \"$@\"\n" % (fake, sys.executable))
    for script in (without, with_it):
        script.chmod(0o755)
    monkeypatch.setattr(alternatives, "libvirtd_running", lambda: True)
    b = bench.Bench(quick=True, slow=False)
    monkeypatch.setattr(alternatives, "_pythons", lambda: (str(without), str(with_it)))
    result = alternatives._libvirt_python(b)
    assert len(result.samples) == b.repeat and all(s > 0 for s in result.samples)
    assert result.note and str(with_it) in result.note
    monkeypatch.setattr(alternatives, "_pythons", lambda: (str(without),))
    result = alternatives._libvirt_python(b)
    assert result.samples == [] and "not importable" in result.note

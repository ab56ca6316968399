"""``capsfast bench``: every field is there and consistent.  No time is
judged here: the figures depend on the machine and its load."""
import json
import os
import subprocess
import sys

import pytest

from capsfast import bench, plan

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)

RESULT_KEYS = {"key", "what", "median_us", "low_us", "high_us", "runs", "note"}
ALWAYS_MEASURED = (
    "import", "first_probe", "first_probe_guests", "floor_cold", "render_json_first", "probe_refresh",
    "probe_cached", "kvm_usable_cached", "render_json_cached", "crossing_empty", "syscalls_devices",
    "fake_root_2_cpus", "fake_root_1024_cpus", "process_python_pass", "process_check_q",
    "process_capabilities_json",
)
MAYBE_MEASURED = (
    "render_libvirt_first", "render_libvirt_cached", "cpuid_one", "alt_cpuinfo_python", "alt_virsh",
    "alt_libvirt_python", "alt_kvm_ok", "alt_virt_host_validate", "alt_py_cpuinfo",
)


@pytest.fixture(scope="module")
def quick_json():
    env = dict(os.environ)
    env["PYTHONPATH"] = PROJECT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run(
        [sys.executable, "-m", "capsfast", "bench", "--quick", "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    # stderr is not a terminal here: no progress lines.
    assert done.stderr == ""
    return json.loads(done.stdout)


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
    assert set(out["alternatives"]) == {k for k in MAYBE_MEASURED if k.startswith("alt_")}
    assert isinstance(out["cpuid_first_probe"], int) and out["cpuid_first_probe"] >= 0
    assert isinstance(out["modules_imported_by_first_probe"], list)
    assert out["floor_first_probe_us"] > 0
    for target in out["targets"]:
        assert set(target) == {"target", "value", "limit", "unit", "met"}
        assert target["met"] in (True, False, None)


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


def test_text_report_from_the_same_document(quick_json):
    text = bench.format_text(quick_json)
    assert "targets:" in text and "alternatives" in text
    for r in quick_json["results"]:
        assert r["what"] in text


def test_cpuinfo_read_stops_after_the_first_processor(tmp_path):
    """1024 processors cost the probe no more bytes than 2."""
    small, small_size = bench._fake_cpuinfo_root(str(tmp_path), 2)
    big, big_size = bench._fake_cpuinfo_root(str(tmp_path), 1024)
    first_block = open(os.path.join(big, "proc", "cpuinfo"), "rb").read().split(b"\n\n")[0]
    read_small, read_big = bench.cpuinfo_bytes_read(small), bench.cpuinfo_bytes_read(big)
    assert big_size > 1000 * len(first_block)
    assert read_big == read_small
    assert len(first_block) < read_big <= plan.CPUINFO_BLOCK
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

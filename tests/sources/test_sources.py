"""Sources: what every part reads of a host comes from one Source, and
what is dear in it (the full CPUID walk, the first /proc/cpuinfo block) is
read once per source, whichever parts ask."""
import pytest

import capsfast
from capsfast import _native
from capsfast.model import resolve

x86_cpu = pytest.mark.skipif(not _native.HAS_CPUID or capsfast.probe().arch not in ("x86_64", "i686"),
                             reason="the live CPU has no CPUID here")


def cpuid_of(call):
    before = _native.cpuid_executed()
    result = call()
    return result, _native.cpuid_executed() - before


@x86_cpu
def test_one_cpuid_walk_per_host_with_every_lazy_part_read(fresh_process_state, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a decode, not a cache hit, and still one walk
    _walk, one_walk = cpuid_of(_native.cpuid_walk)
    host, _first_probe = cpuid_of(capsfast.probe)
    _resolved, reading = cpuid_of(lambda: resolve(host))
    # security and cpu_model both want the walk: the source gives it once.
    assert reading == one_walk, (reading, one_walk)


@x86_cpu
def test_a_second_source_walks_again_and_its_own_walk_is_kept(fresh_process_state):
    from capsfast.sources.live import Live

    live = Live(capsfast.probe().arch)
    first, walked = cpuid_of(live.walk)
    again, walked_again = cpuid_of(live.walk)
    assert walked > 0 and walked_again == 0 and again is first


def test_cpuinfo_is_read_once_per_source(tmp_path, monkeypatch):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu vmx\n\nprocessor\t: 1\n")
    from capsfast.sources.base import Source

    source = Source(str(tmp_path), "x86_64")
    crossings = []
    real = _native.Batch.run
    monkeypatch.setattr(_native.Batch, "run", lambda self, *a: crossings.append(1) or real(self, *a))
    assert source.cpuinfo_bytes().startswith(b"processor\t: 0\nflags\t\t: fpu vmx\n\n")
    assert source.cpuinfo_bytes() is source.cpuinfo_bytes()
    assert len(crossings) == 1


def test_a_directory_has_no_device_and_no_cpuid_without_a_dump(tmp_path):
    from capsfast.sources.base import Source

    source = Source(str(tmp_path), "x86_64")
    assert source.walk() is None
    assert source.cpu_device(True, True) == (None, None)
    assert source.access("/dev/kvm") is None  # a placeholder is not a device
    assert source.kvm_caps([("IRQCHIP", 0)]) is None
    assert source.captured("platform")


def test_a_cpu_map_overlay_is_the_sources_not_a_second_probe(tmp_path, monkeypatch):
    """--cpu-map lays a directory over the host's own map: one probe, whose
    cpu_model decodes against the overlay."""
    (tmp_path / "map").mkdir()
    calls = []
    from capsfast.parts.core import read as core

    real = core.read_core
    monkeypatch.setattr(core, "read_core", lambda source, deep: calls.append(source.cpu_map)
                        or real(source, deep))
    host = capsfast.probe(cpu_map=str(tmp_path / "map"))
    assert calls == [str(tmp_path / "map")]
    assert host.cpu_model.name is None  # an empty map names no model


@x86_cpu
def test_each_live_host_reads_the_cpu_as_it_is_then(fresh_process_state, tmp_path, monkeypatch):
    """A later live Host's parts walk CPUID again (a late microcode load
    changes what the CPU says): no Host serves another's reading."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _walk, one_walk = cpuid_of(_native.cpuid_walk)
    first = capsfast.probe()
    _resolved, reading = cpuid_of(lambda: resolve(first))
    later = capsfast.probe(refresh=True)
    assert later is not first
    _resolved, reading_again = cpuid_of(lambda: resolve(later))
    assert reading == reading_again == one_walk


@pytest.mark.parametrize("path_env", [None, "/opt/qemu/bin:/usr/local/bin", ""])
def test_guests_and_domain_capabilities_look_in_one_path(tmp_path, monkeypatch, path_env):
    """The emulator domain capabilities take for the host's arch is the one
    the guests list, whatever PATH is: set, empty, or unset (then glib's
    /bin:/usr/bin, as libvirt takes it, not /usr/local/bin)."""
    from capsfast.errors import CapsfastError
    from capsfast.parts.domcaps import read as domcaps
    from capsfast.parts.guests import discover
    from capsfast.sources.base import Source

    for directory in ("usr/local/bin", "usr/bin", "opt/qemu/bin"):
        (tmp_path / directory).mkdir(parents=True)
    for directory in ("usr/local/bin", "opt/qemu/bin"):
        emulator = tmp_path / directory / "qemu-system-x86_64"
        emulator.write_text("#!/bin/sh\n")
        emulator.chmod(0o755)
    if path_env is None:
        monkeypatch.delenv("PATH", raising=False)
    else:
        monkeypatch.setenv("PATH", path_env)
    source = Source(str(tmp_path), "x86_64")
    listed = discover.discover(source).binaries.get("x86_64")
    try:
        taken = domcaps.default_emulator(source, "x86_64", "x86_64")
    except CapsfastError:
        taken = None
    assert taken == listed
    assert source.search_path() == {None: "/bin:/usr/bin"}.get(path_env, path_env)

"""--expand-features: libvirt's baseline and feature expansion (what
``virsh hypervisor-cpu-baseline --features`` prints, what KubeVirt labels
nodes with), checked against libvirt 9.0's cputest baselines and against
what libvirtd printed on a live host for the same QMP transcript."""
import os
from xml.etree.ElementTree import fromstring

import pytest

from capsfast.cpu_map.x86_baseline import baseline, expand
from capsfast.cpu_map.x86_decode import GuestCpu
from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import parse
from capsfast.parts.domcaps.cpu import CpuModes, CustomModel, cpu_modes, expand_features
from capsfast.render.domcaps_cpu import cpu_lines, guest_cpu_lines
from test_domcaps_cpu import libvirt_cpu_map  # noqa: F401 (a fixture: libvirt 9.0's CPU map, loaded once)

HERE = os.path.dirname(os.path.abspath(__file__))
LIVE = os.path.join(HERE, "..", "..", "data", "domcaps", "qemu-7.2-xeon-kvm-pvm")


def _definition(node):
    """A CPU element as libvirt parses it; a host CPU's features have no policy: required."""
    vendor = node.find("vendor")
    return GuestCpu(node.findtext("model"), None if vendor is None else vendor.text,
                    tuple((f.get("policy", "require"), f.get("name")) for f in node.findall("feature")))


# cputest.c's DO_TEST_BASELINE for x86_64: (name, what is asked, expected file suffix)
BASELINES = [
    ("no-vendor", "", "result"),
    ("some-vendors", "", "result"),
    ("simple", "", "result"),
    ("simple", "expand", "expanded"),
    ("features", "", "result"),
    ("features", "expand", "expanded"),
    ("Westmere+Nehalem", "", "result"),
    ("Westmere+Nehalem", "migratable", "migratable"),
]


@pytest.mark.parametrize("name,flag,suffix", BASELINES)
def test_libvirt_cputest_baselines(libvirt_src, libvirt_cpu_map, name, flag, suffix):
    data = os.path.join(libvirt_src, "tests", "cputestdata")
    with open(os.path.join(data, "x86_64-baseline-%s.xml" % name)) as f:
        cpus = [_definition(node) for node in fromstring(f.read()).findall("cpu")]
    cpu, forbid = baseline(cpus, libvirt_cpu_map, migratable=flag == "migratable")
    if flag == "expand":
        cpu = expand(cpu, libvirt_cpu_map)
    with open(os.path.join(data, "x86_64-baseline-%s-%s.xml" % (name, suffix))) as f:
        expected = f.read()
    assert "\n".join(guest_cpu_lines(cpu, "forbid" if forbid else "allow")) + "\n" == expected


def test_libvirt_cputest_incompatible_vendors_are_refused(libvirt_src, libvirt_cpu_map):
    with open(os.path.join(libvirt_src, "tests", "cputestdata", "x86_64-baseline-incompatible-vendors.xml")) as f:
        cpus = [_definition(node) for node in fromstring(f.read()).findall("cpu")]
    with pytest.raises(CapsfastError, match="vendors do not match"):
        baseline(cpus, libvirt_cpu_map)


@pytest.mark.parametrize("virttype", ["kvm", "qemu"])
def test_live_host_equals_libvirtd(libvirt_cpu_map, virttype):
    with open(os.path.join(LIVE, "qmp.replies")) as f:
        transcript = parse.transcript(f.read())
    modes = cpu_modes(transcript, virttype=virttype, arch="x86_64", cpu_map=libvirt_cpu_map)
    with open(os.path.join(LIVE, "cpu-%s.xml" % virttype)) as f:
        assert "\n".join(cpu_lines(modes)) + "\n" == f.read()
    with open(os.path.join(LIVE, "baseline-%s.xml" % virttype)) as f:
        assert "\n".join(guest_cpu_lines(expand_features(modes, libvirt_cpu_map))) + "\n" == f.read()


def test_blockers_of_the_model_are_disabled(libvirt_cpu_map):
    """A feature of the host-model's model that QEMU says blocks it is
    disabled in the expansion, though the host-model CPU never named it."""
    host = GuestCpu("Penryn", "Intel", ())
    penryn_features = ("fpu", "sse4.1", "ssse3", "cx16", "lm")
    clean = CpuModes((), (), host, (CustomModel("Penryn", "yes", False, "Intel"),), penryn_features)
    blocked = CpuModes((), (), host, (CustomModel("Penryn", "no", False, "Intel", ("sse4.1",)),), penryn_features)
    assert ("require", "sse4.1") in expand_features(clean, libvirt_cpu_map).features
    assert ("disable", "sse4.1") in expand_features(blocked, libvirt_cpu_map).features


def test_expanding_without_a_host_model_is_one_error(libvirt_cpu_map):
    with pytest.raises(CapsfastError, match="no host-model"):
        expand_features(CpuModes((), (), None, ()), libvirt_cpu_map)
    with pytest.raises(CapsfastError, match="no CPU models"):
        expand_features(CpuModes((), (), GuestCpu("Penryn", "Intel", ()), ()), libvirt_cpu_map)


def test_features_qemu_does_not_know_are_left_out(libvirt_cpu_map):
    """The baseline keeps only features QEMU's expansion names at all."""
    penryn = [name for _policy, name in expand(GuestCpu("Penryn", "Intel", ()), libvirt_cpu_map).features]
    host = GuestCpu("Penryn", "Intel", (("require", "avx"),))
    offered = (CustomModel("Penryn", "yes", False, "Intel"),)
    knows_avx = CpuModes((), (), host, offered, tuple(penryn) + ("avx",))
    lacks_avx = CpuModes((), (), host, offered, tuple(penryn))
    assert ("require", "avx") in expand_features(knows_avx, libvirt_cpu_map).features
    assert "avx" not in {name for _policy, name in expand_features(lacks_avx, libvirt_cpu_map).features}

"""The libvirt XML reader: real libvirt outputs (the reference samples) read
back into the guest model, the round trip through our renderer, and our
guest rules checked against what libvirt printed for the same inputs."""
import os
import tempfile
from pathlib import Path

import pytest
from lxml import etree

import capsfast
from capsfast import libvirt_xml
from capsfast.parts.guests import decide as guests
from capsfast.errors import CapsfastError
from capsfast.model import Xen, resolve
from test_render_xml import assert_valid

LIBVIRT_SCHEMA = "/usr/share/libvirt/schemas/capability.rng"


def samples_dir():
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / "libvirt-capabilities-samples"
        if candidate.is_dir():
            return candidate
    return None


SAMPLES = samples_dir()
needs_samples = pytest.mark.skipif(SAMPLES is None, reason="shared/reference/libvirt-capabilities-samples not found next to the checkout")


def sample(name):
    return (SAMPLES / name).read_bytes()


@pytest.fixture(scope="module")
def libvirt_schema():
    if not os.path.exists(LIBVIRT_SCHEMA):
        pytest.skip("%s missing: install Debian's libvirt0" % LIBVIRT_SCHEMA)
    return etree.RelaxNG(etree.parse(LIBVIRT_SCHEMA))


def host_with(arch, guest_list, template_host=None):
    if template_host is None:
        # An empty root of that arch (the live host refuses an arch its CPU
        # contradicts).
        with tempfile.TemporaryDirectory() as root:
            template_host = resolve(capsfast.probe(root=root, arch=arch))
    return template_host._replace(arch=arch, guests=tuple(guest_list))


@needs_samples
def test_every_sample_reads():
    names = sorted(p.name for p in SAMPLES.glob("*.xml"))
    assert names
    for name in names:
        caps = libvirt_xml.read(sample(name))
        assert caps.arch and caps.guests, name
        for g in caps.guests:
            assert g.os_type in ("hvm", "xen", "linux", "exe") and g.wordsize in (31, 32, 64), name
            assert g.domains, name


@needs_samples
def test_round_trip_of_the_schema_valid_samples(libvirt_schema):
    """Read -> render -> validate -> read gives the same guests."""
    tried = 0
    for path in sorted(SAMPLES.glob("*.xml")):
        if not libvirt_schema.validate(etree.parse(str(path))):
            continue  # newer or older libvirt than the installed schema
        tried += 1
        caps = libvirt_xml.read(path.read_bytes())
        text = capsfast.capabilities(host_with(caps.arch, caps.guests), format="libvirt")
        # This machine's host <cpu> names sse4.1 as libvirt does, which
        # libvirt 9.0's own schema refuses: assert_valid sets the dot aside.
        assert_valid(libvirt_schema, text)
        again = libvirt_xml.read(text)
        assert again.guests == caps.guests, path.name
        assert again.arch == caps.arch
    assert tried >= 4


@needs_samples
def test_reader_details_of_the_debian_sample():
    caps = libvirt_xml.read(sample("generated__debian-libvirt-9.0.0-qemu-embed-this-host.xml"))
    assert caps.arch == "x86_64"
    i686, x86_64 = caps.guests
    assert (i686.arch, i686.wordsize, i686.emulator, i686.domains) == (
        "i686", 32, "/usr/bin/qemu-system-i386", ("qemu", "kvm"))
    assert i686.features == ("pae", "nonpae", "acpi", "apic", "cpuselection", "deviceboot", "disksnapshot")
    pc = [m for m in x86_64.machines if m.name == "pc"]
    assert pc and pc[0].canonical == "pc-i440fx-7.2"
    assert any(m.deprecated for m in x86_64.machines)


def strip(guest_list):
    return [g._replace(machines=None) for g in guest_list]


@needs_samples
def test_our_qemu_rules_match_libvirt_9_on_the_debian_sample():
    """libvirt 9.0 on an x86_64 host with qemu-system-i386 and -x86_64 and
    a working /dev/kvm: our rules give the same guests."""
    caps = libvirt_xml.read(sample("generated__debian-libvirt-9.0.0-qemu-embed-this-host.xml"))
    binaries = {"i386": "/usr/bin/qemu-system-i386", "x86_64": "/usr/bin/qemu-system-x86_64"}
    ours = guests.qemu_guests("x86_64", binaries, None, True, False)
    assert list(ours) == strip(caps.guests)


@needs_samples
@pytest.mark.parametrize("name, host_arch, tokens", [
    ("xencapsdata__xen-x86_64-hvm.xml", "x86_64",
     "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"),
    ("xencapsdata__xen-x86_64.xml", "x86_64", "xen-3.0-x86_64"),
    ("xencapsdata__xen-i686-pae-hvm.xml", "i686", "xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p"),
])
def test_our_xen_rules_match_libvirts_xen_driver(name, host_arch, tokens):
    """The token lists are those of libvirt's own xencapstest for these
    expected outputs."""
    caps = libvirt_xml.read(sample(name))
    ours = guests.xen_guests(host_arch, Xen(True, "dom0", "xen", tuple(tokens.split())))
    assert list(ours) == list(caps.guests)


def test_reader_rejects_what_is_not_capabilities():
    with pytest.raises(CapsfastError, match="libvirt XML"):
        libvirt_xml.read("not xml at all")
    with pytest.raises(CapsfastError, match="not <capabilities>"):
        libvirt_xml.read("<domain/>")
    with pytest.raises(CapsfastError, match="wordsize"):
        libvirt_xml.read("<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
                         "<guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest></capabilities>")


def test_reader_refuses_entities():
    evil = ('<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<capabilities><host><cpu><arch>&x;</arch></cpu></host></capabilities>")
    caps = libvirt_xml.read(evil)
    assert "root:" not in (caps.arch or "")


def test_round_trip_of_every_scenario(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    caps = libvirt_xml.read(capsfast.capabilities(host, format="libvirt"))
    assert caps.arch == host.arch
    assert caps.guests == host.guests

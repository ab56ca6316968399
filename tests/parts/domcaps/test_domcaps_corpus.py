"""libvirt 9.0's own domain capabilities corpus, replayed offline: every
x86_64 document of tests/domaincapsdata from the matching QMP transcript
of tests/qemucapabilitiesdata, in the environment libvirt's domaincapstest
sets, equal byte for byte.  No QEMU, no KVM, no libvirt runs."""
import os
import re
import xml.etree.ElementTree as ET

import pytest

from libvirt_data import libvirt_source

from capsfast.cpu_map import x86_map
from capsfast.parts.domcaps import decide, parse, read
from capsfast.parts.domcaps.model import Environment
from capsfast.render.domcaps_libvirt import render

EMULATOR = "/usr/bin/qemu-system-x86_64"
# domaincapstest: per QEMU version, each machine variant with its virt type.
VARIANTS = (("", None, "kvm"), ("-q35", "q35", "kvm"), ("-tcg", None, "qemu"))


# domaincapstest replaces the loader images it found with these.
DOMAINCAPSTEST_LOADERS = ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF32_CODE.fd",
                          "/usr/share/OVMF/OVMF_CODE.fd")


def corpus_versions():
    src = libvirt_source()
    if src is None:
        return ["(no libvirt source)"]
    data = os.path.join(src, "tests", "qemucapabilitiesdata")
    return sorted(name[len("caps_"):-len(".x86_64.replies")] for name in os.listdir(data)
                  if name.startswith("caps_") and name.endswith(".x86_64.replies"))


def corpus_env(version):
    """domaincapstest's mocks: KVM's vCPU limit out of the way (INT_MAX),
    CPUID 0x8000001F with ECX=509 and EDX=451, swtpm present with the TPM
    versions it sets per QEMU version, VFIO usable."""
    if version.startswith(("4.", "5.")):
        tpm = ("1.2",)
    elif version.startswith("6."):
        tpm = ("1.2", "2.0")
    else:
        tpm = ("2.0",)
    return Environment(kvm_max_vcpus=2**31 - 1, sev_asids=(509, 451), vfio=True, swtpm=True,
                       swtpm_versions=tpm, privileged=False)


def transcript_of(src, version):
    path = os.path.join(src, "tests", "qemucapabilitiesdata", "caps_%s.x86_64.replies" % version)
    with open(path) as f:
        return parse.transcript(f.read())


@pytest.mark.parametrize("version", corpus_versions())
@pytest.mark.parametrize("suffix,machine,virttype", VARIANTS, ids=["default", "q35", "tcg"])
def test_libvirt_domaincaps_x86_64(libvirt_src, version, suffix, machine, virttype):
    with open(os.path.join(libvirt_src, "tests", "domaincapsdata",
                           "qemu_%s%s.x86_64.xml" % (version, suffix))) as f:
        expected = f.read()
    transcript = transcript_of(libvirt_src, version)
    # domaincapstest: libvirt's firmware tree read unprivileged, with the
    # user's configuration in /home/user/.config; the loader images it
    # found replaced by a fixed list.
    tree = os.path.join(libvirt_src, "tests", "qemufirmwaredata")
    files = read.search_descriptors(tree, privileged=False, xdg_config_home="/home/user/.config")
    descriptors = parse.descriptors(files)
    caps = decide.domain_caps(transcript, corpus_env(version), arch="x86_64", machine=machine,
                              virttype=virttype, emulator=EMULATOR,
                              cpu_map=x86_map.load(os.path.join(libvirt_src, "src", "cpu_map")),
                              descriptors=descriptors, exists=lambda path: True)
    caps = caps.replace(os=caps.os.replace(loaders=DOMAINCAPSTEST_LOADERS))
    assert render(caps) == expected


def libvirt_caps(src, version):
    """libvirt's own reading of the same transcript (its capabilities
    cache file, tests/qemucapabilitiesdata/caps_<ver>.x86_64.xml)."""
    return ET.parse(os.path.join(src, "tests", "qemucapabilitiesdata", "caps_%s.x86_64.xml" % version)).getroot()


@pytest.mark.parametrize("version", corpus_versions())
def test_flags_are_libvirts(libvirt_src, version):
    root = libvirt_caps(libvirt_src, version)
    theirs = {flag.get("name") for flag in root.iter("flag")} & decide.FLAGS
    assert decide.qemu_flags(transcript_of(libvirt_src, version)) == theirs


@pytest.mark.parametrize("version", corpus_versions())
def test_machines_are_libvirts(libvirt_src, version):
    root = libvirt_caps(libvirt_src, version)
    transcript = transcript_of(libvirt_src, version)
    for virttype in ("kvm", "qemu"):
        theirs = [(m.get("name"), m.get("alias"), int(m.get("maxCpus", 0)))
                  for m in root.iter("machine") if m.get("type") == ("tcg" if virttype == "qemu" else virttype)]
        ours = [(m.name, m.alias, m.max_cpus) for m in decide.machines(transcript, virttype, "x86_64")]
        assert ours == theirs


def without_os_and_cpu(doc):
    """The document without its <os> and <cpu> elements: the recorded host
    below kept neither its firmware descriptors nor its CPU map; this
    host's <cpu> is compared in test_domcaps_cpu.py (qemu-7.2-xeon-kvm-pvm),
    its <os> live in test_domcaps_firmware_live.py."""
    doc = re.sub(r"  <os supported='yes'>\n.*?\n  </os>\n|  <os supported='no'/>\n", "", doc, flags=re.S)
    return re.sub(r"  <cpu>\n.*?\n  </cpu>\n", "", doc, flags=re.S)


HOSTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "data", "domcaps")


@pytest.mark.parametrize("answer", ["kvm-default", "kvm-q35", "qemu-default", "qemu-q35"])
def test_a_live_hosts_answers(answer):
    """A real host's transcript and libvirt's own answers there (see
    environment.json): the machine it was recorded on is no longer needed."""
    import gzip
    import json

    host = os.path.join(HOSTS, "qemu-7.2-kvm-pvm")
    with open(os.path.join(host, "environment.json")) as f:
        facts = json.load(f)
    with gzip.open(os.path.join(host, "qmp.replies.gz"), "rt") as f:
        transcript = parse.transcript(f.read())
    with open(os.path.join(host, answer + ".xml")) as f:
        expected = f.read()
    env = Environment(kvm_max_vcpus=facts["kvm_max_vcpus"], sev_asids=tuple(facts["sev_asids"]),
                      vfio=facts["vfio"], swtpm=facts["swtpm"], swtpm_versions=tuple(facts["swtpm_versions"]),
                      privileged=facts["privileged"])
    virttype, machine = answer.split("-")
    caps = decide.domain_caps_core(transcript, env, arch=facts["arch"],
                                   machine=None if machine == "default" else machine, virttype=virttype,
                                   emulator=facts["emulator"])
    assert render(caps) == without_os_and_cpu(expected)

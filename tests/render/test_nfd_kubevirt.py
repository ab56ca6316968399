"""The NFD labels that stand for KubeVirt's node labeller's: from domain
capabilities' CPU modes (host-model CPU, its required features and vendor,
usable models) and from the host's TSC.  libvirt's own answers are the
reference: its corpus transcript in, the labels KubeVirt would read from
libvirt's expected domain capabilities XML out."""
import os
import xml.etree.ElementTree as ET

import pytest

import capsfast
from capsfast.cli import main
from capsfast.parts.domcaps import parse
from capsfast.parts.domcaps.cpu import cpu_modes
from capsfast.render import nfd


def kubevirt_labels(domcaps_xml):
    """What KubeVirt's labeller takes from ``virsh domcapabilities``, as
    capsfast names it: written from the XML, not from capsfast's model."""
    root = ET.fromstring(domcaps_xml)
    pairs = []
    host_model = root.find("./cpu/mode[@name='host-model']")
    if host_model is not None and host_model.get("supported") == "yes":
        pairs.append(("capsfast-host-model-cpu." + host_model.find("model").text, "true"))
        vendor = host_model.find("vendor")
        if vendor is not None:
            pairs.append(("capsfast-cpu-vendor." + vendor.text, "true"))
        pairs += [("capsfast-host-model-required-features." + f.get("name"), "true")
                  for f in host_model.findall("feature") if f.get("policy") == "require"]
    custom = root.find("./cpu/mode[@name='custom']")
    pairs += [("capsfast-cpu-model." + m.text, "true")
              for m in custom.findall("model") if m.get("usable") == "yes"]
    return pairs


@pytest.mark.parametrize("version", ["7.2.0", "8.0.0", "6.2.0"])
def test_labels_are_those_kubevirt_reads_from_libvirt(libvirt_src, version):
    from capsfast.cpu_map import x86_map

    with open(os.path.join(libvirt_src, "tests", "qemucapabilitiesdata", "caps_%s.x86_64.replies" % version)) as f:
        transcript = parse.transcript(f.read())
    cpu_map = x86_map.load(os.path.join(libvirt_src, "src", "cpu_map"))
    modes = cpu_modes(transcript, virttype="kvm", arch="x86_64", cpu_map=cpu_map)
    with open(os.path.join(libvirt_src, "tests", "domaincapsdata", "qemu_%s.x86_64.xml" % version)) as f:
        expected = kubevirt_labels(f.read())
    got = nfd.cpu_mode_labels(modes)
    assert got == expected
    assert any(name.startswith("capsfast-host-model-required-features.") for name, _ in got)
    assert any(name.startswith("capsfast-cpu-model.") for name, _ in got)
    text = nfd.render(capsfast.probe(), cpu_modes=modes)
    for name, value in got:
        assert "%s/%s=%s\n" % (nfd.DEFAULT_NAMESPACE, name, value) in text


def test_tsc_labels_where_libvirt_reports_the_tsc():
    host = capsfast.probe()
    tsc = host.cpu_model.tsc
    pairs = dict(nfd.labels(host))
    if tsc is None:
        assert not any(name.startswith("capsfast-cpu-timer.") for name in pairs)
        pytest.skip("libvirt reports no TSC here (no invariant TSC or no usable /dev/kvm)")
    assert pairs["capsfast-cpu-timer.tsc-frequency"] == str(tsc.frequency)
    assert pairs["capsfast-cpu-timer.tsc-scalable"] == ("true" if tsc.scaling == "yes" else "false")


def test_domcaps_needs_a_recording_with_qemus_answers(capsys):
    hosts = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hosts")
    scenario = os.path.join(hosts, sorted(os.listdir(hosts))[0])
    assert main(["export", "nfd", "--stdout", "--domcaps", "--replay", scenario]) == 2
    err = capsys.readouterr().err
    assert err.startswith("capsfast: ") and err.count("\n") == 1 and "holds no QEMU answers" in err, err


def test_domcaps_with_no_qemu_here_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    if os.path.exists("/usr/libexec/qemu-kvm"):
        pytest.skip("qemu-kvm is installed here")
    assert main(["export", "nfd", "--stdout", "--domcaps"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("capsfast: domain capabilities: no QEMU emulator for ") and err.count("\n") == 1, err

"""The two XML formats: libvirt's (validated against the libvirt schema
installed on this machine) and the draft (validated against ours), with a
golden file per scenario."""
import os
import subprocess
import sys

import pytest
from lxml import etree

import capsfast
from capsfast.parts.guests.decide import Machine
from capsfast.model import Guest
from capsfast.render import draft as draft_renderer
from capsfast.render.json import host_dict
from scenarios import check_golden

LIBVIRT_SCHEMA = "/usr/share/libvirt/schemas/capability.rng"


@pytest.fixture(scope="module")
def libvirt_schema():
    if not os.path.exists(LIBVIRT_SCHEMA):
        pytest.skip("%s missing: install Debian's libvirt0 to validate against libvirt's schema" % LIBVIRT_SCHEMA)
    return etree.RelaxNG(etree.parse(LIBVIRT_SCHEMA))


@pytest.fixture(scope="module")
def draft_schema():
    return etree.RelaxNG(etree.parse(draft_renderer.SCHEMA))


def assert_valid(schema, text):
    doc = etree.fromstring(text.encode())
    # libvirt 9.0's cputypes.rng allows no dot in a host CPU <feature> name,
    # yet libvirt prints sse4.1 and sse4.2 there itself (see
    # test_libvirts_schema_rejects_its_own_dotted_feature_names): only the
    # dot is set aside, every other rule applies.
    for feature in doc.findall("host/cpu/feature"):
        feature.set("name", feature.get("name").replace(".", "_"))
    assert schema.validate(doc), "\n".join(str(e) for e in schema.error_log) + "\n" + text


def test_libvirts_schema_rejects_its_own_dotted_feature_names(libvirt_schema):
    # The host <cpu> as virsh capabilities prints it on a CPU with SSE4.1.
    text = ("<capabilities><host><cpu><arch>x86_64</arch><model>Haswell</model>"
            "<feature name='%s'/></cpu></host></capabilities>")
    assert libvirt_schema.validate(etree.fromstring(text % "sse4_1"))
    assert not libvirt_schema.validate(etree.fromstring(text % "sse4.1"))


def test_scenario_libvirt_xml(scenario, tmp_path, libvirt_schema):
    text = capsfast.capabilities(scenario.probe(tmp_path), format="libvirt")
    assert_valid(libvirt_schema, text)
    check_golden(scenario.dir / "expected-libvirt.xml", text)


def test_scenario_draft_xml(scenario, tmp_path, draft_schema):
    text = capsfast.capabilities(scenario.probe(tmp_path), format="draft")
    assert_valid(draft_schema, text)
    check_golden(scenario.dir / "expected-draft.xml", text)


def test_scenario_json_lists_the_guests(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    listed = host_dict(host)["guests"]
    assert [(g["os_type"], g["arch"], g["emulator"], tuple(g["domains"])) for g in listed] == [
        (g.os_type, g.arch, g.emulator, g.domains) for g in host.guests]


def test_this_host_validates(libvirt_schema, draft_schema):
    host = capsfast.probe()
    assert_valid(libvirt_schema, capsfast.capabilities(host, format="libvirt"))
    assert_valid(draft_schema, capsfast.capabilities(host, format="draft"))


def guest_elements(text):
    doc = etree.fromstring(text.encode())
    return [
        (g.findtext("os_type"), g.find("arch").get("name"), [d.get("type") for d in g.iter("domain")],
         g.findtext("arch/loader"))
        for g in doc.findall("guest")
    ]


def scenario_host(name, tmp_path):
    from scenarios import all_scenarios

    found = {s.name: s for s in all_scenarios()}
    if name not in found:
        pytest.skip("scenario %s not present" % name)
    return found[name].probe(tmp_path)


def test_xen_dom0_yields_xen_and_hvm_guests_with_domain_xen(tmp_path):
    text = capsfast.capabilities(scenario_host("xen-dom0-hvm", tmp_path), format="libvirt")
    xen = [g for g in guest_elements(text) if g[2] == ["xen"]]
    assert {(g[0], g[1]) for g in xen} == {("xen", "x86_64"), ("xen", "i686"), ("hvm", "i686"), ("hvm", "x86_64")}
    assert all(g[3] == "/usr/lib/xen/boot/hvmloader" for g in xen if g[0] == "hvm")


def test_xen_dom0_without_hvm_tokens_has_no_hvm_guest(tmp_path):
    text = capsfast.capabilities(scenario_host("xen-dom0-no-hvm", tmp_path), format="libvirt")
    assert [(g[0], g[1], g[2]) for g in guest_elements(text)] == [("xen", "x86_64", ["xen"])]


def test_host_features_are_libvirts_four_in_schema_order_on_a_xen_dom0(tmp_path):
    host = scenario_host("xen-dom0-hvm", tmp_path)
    doc = etree.fromstring(capsfast.capabilities(host, format="libvirt").encode())
    assert [e.tag for e in doc.find("host/cpu/features")] == ["pae", "vmx"]
    assert doc.findtext("host/cpu/arch") == "x86_64"
    assert doc.find("host/migration_features") is None


def test_a_qemu_host_has_the_qemu_drivers_cpu_and_migration(tmp_path):
    # libvirt 9 prints pae/vmx/svm <features> for Xen only.
    host = scenario_host("amd-svm", tmp_path)
    doc = etree.fromstring(capsfast.capabilities(host, format="libvirt").encode())
    assert doc.find("host/cpu/features") is None
    assert doc.findtext("host/cpu/vendor") == "AMD"
    migration = doc.find("host/migration_features")
    assert migration.find("live") is not None
    assert [t.text for t in migration.iter("uri_transport")] == ["tcp", "rdma"]


def test_non_x86_host_has_no_host_features(tmp_path):
    doc = etree.fromstring(capsfast.capabilities(scenario_host("aarch64-kvm", tmp_path), format="libvirt").encode())
    assert doc.find("host/cpu/features") is None


def test_machines_render_valid(tmp_path, libvirt_schema):
    host = scenario_host("intel-enabled", tmp_path)
    listed = (Machine("pc", "pc-i440fx-7.2", False), Machine("pc-i440fx-7.2", None, False),
              Machine("pc-i440fx-1.4", None, True))
    host = host._replace(guests=tuple(g._replace(machines=listed) for g in host.guests))
    text = capsfast.capabilities(host, format="libvirt")
    assert_valid(libvirt_schema, text)
    assert '<machine canonical="pc-i440fx-7.2">pc</machine>' in text
    assert '<machine deprecated="yes">pc-i440fx-1.4</machine>' in text


def test_draft_domain_types_split_between_top_and_arch(tmp_path, draft_schema):
    host = scenario_host("intel-enabled", tmp_path)
    host = host._replace(guests=(
        Guest("hvm", "x86_64", 64, "/usr/bin/qemu-system-x86_64", ("qemu", "kvm"), (), None, None),
        Guest("hvm", "aarch64", 64, "/usr/bin/qemu-system-aarch64", ("qemu",), (), None, None),
    ))
    text = capsfast.capabilities(host, format="draft")
    assert_valid(draft_schema, text)
    doc = etree.fromstring(text.encode())
    assert [e.text for e in doc.findall("domain_type")] == ["qemu"]
    archs = doc.findall("guest_architectures/guest_architecture")
    assert [e.text for e in archs[0].findall("domain_type")] == ["kvm"]
    assert [e.tag for e in archs[0].find("features")] == ["hvm", "accelerated"]
    assert [e.tag for e in archs[1].find("features")] == ["emulated"]
    assert doc.findtext("host_features/hvm") == "yes"
    assert doc.findtext("host_features/type") == "vmx"
    assert doc.findtext("host_features/bios_setting") == "enabled"


def test_draft_schema_rejects_a_wrong_document(draft_schema):
    bad = "<capabilities><host_features><hvm>maybe</hvm><status>enabled</status></host_features><guest_architectures/></capabilities>"
    assert not draft_schema.validate(etree.fromstring(bad))


def test_cli_capabilities_defaults_to_libvirt(tmp_path, capsys):
    from capsfast.cli import main

    host_root = tmp_path / "root"
    (host_root / "usr/bin").mkdir(parents=True)
    assert main(["capabilities", "--root", str(host_root), "--arch", "x86_64"]) == 0
    out = capsys.readouterr().out
    assert etree.fromstring(out.encode()).find("host/cpu/arch").text == "x86_64"
    assert main(["capabilities", "--root", str(host_root), "--arch", "x86_64", "--format", "draft"]) == 0
    assert etree.fromstring(capsys.readouterr().out.encode()).find("host_features") is not None


def test_import_capsfast_and_probe_load_no_lxml():
    code = "import sys, capsfast; capsfast.probe(); print('lxml' in sys.modules, 'json' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_rendering_xml_loads_no_lxml():
    """lxml costs more to import than the whole probe: the XML formats are
    written without it (it stays for reading and for these tests)."""
    code = ("import capsfast, sys; capsfast.capabilities(format='libvirt'); capsfast.capabilities(format='draft');"
            " print(sorted(m for m in sys.modules if m == 'lxml' or m.startswith('lxml.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The <cpu> of domain capabilities: libvirt 9.0's own documents and its
host-model decodes, replayed offline from its QMP test data (no QEMU, no
KVM), equal to what libvirt prints; the decisions on small transcripts."""
import json
import os
import re
from xml.etree.ElementTree import fromstring

import pytest

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import parse
from capsfast.cpu_map.x86_decode import GuestCpu
from capsfast.parts.domcaps.cpu import CustomModel, cpu_modes, host_model
from capsfast.render.domcaps_cpu import cpu_lines

# The x86_64 QEMU versions of libvirt 9.0's tests/domaincapsdata, and the
# variants domaincapstest.c prints for each (suffix, virt type).
VERSIONS = ["4.2.0", "5.0.0", "5.1.0", "5.2.0", "6.0.0", "6.1.0", "6.2.0", "7.0.0", "7.1.0", "7.2.0", "8.0.0"]
VARIANTS = [("", "kvm"), ("-q35", "kvm"), ("-tcg", "qemu")]


_loaded = {}  # parsed once for the whole module: the map and the transcripts


@pytest.fixture
def libvirt_cpu_map(libvirt_src):
    from capsfast.cpu_map import x86_map

    directory = os.path.join(libvirt_src, "src", "cpu_map")
    if directory not in _loaded:
        _loaded[directory] = x86_map.load(directory)
    return _loaded[directory]


@pytest.fixture
def transcripts(libvirt_src):
    def get(version):
        path = os.path.join(libvirt_src, "tests", "qemucapabilitiesdata", "caps_%s.x86_64.replies" % version)
        if path not in _loaded:
            with open(path) as f:
                _loaded[path] = parse.transcript(f.read())
        return _loaded[path]
    return get


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("suffix,virttype", VARIANTS)
def test_libvirt_domaincaps_cpu_element(libvirt_src, libvirt_cpu_map, transcripts, version, suffix, virttype):
    path = os.path.join(libvirt_src, "tests", "domaincapsdata", "qemu_%s%s.x86_64.xml" % (version, suffix))
    with open(path) as f:
        expected = re.search(r"^  <cpu>\n.*?^  </cpu>\n", f.read(), re.S | re.M)
    assert expected is not None
    modes = cpu_modes(transcripts(version), virttype=virttype, arch="x86_64", cpu_map=libvirt_cpu_map)
    assert "\n".join(cpu_lines(modes)) + "\n" == expected.group(0)


def _json_objects(text):
    decoder = json.JSONDecoder()
    objects, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos == len(text):
            return objects
        obj, pos = decoder.raw_decode(text, pos)
        objects.append(obj)


def test_libvirt_cputest_host_model_decodes(libvirt_src, libvirt_cpu_map):
    """cputest.c's cpuTestJSONCPUID: QEMU's static expansion of 'host'
    (then, for the JSON_MODELS hosts, its query-cpu-definitions reply)
    decoded to the CPU of x86_64-cpuid-<host>-json.xml."""
    data = os.path.join(libvirt_src, "tests", "cputestdata")
    with open(os.path.join(libvirt_src, "tests", "cputest.c")) as f:
        hosts = re.findall(r'DO_TEST_CPUID\(VIR_ARCH_X86_64, "([^"]+)", (JSON_\w+)\)', f.read())
    checked = 0
    for host, kind in hosts:
        if kind == "JSON_NONE":
            continue
        with open(os.path.join(data, "x86_64-cpuid-%s.json" % host)) as f:
            objects = _json_objects(f.read())
        process = [({"execute": "query-cpu-model-expansion",
                     "arguments": {"type": "static", "model": {"name": "host"}}}, objects[0])]
        if kind != "JSON_HOST":
            process.append(({"execute": "query-cpu-definitions"}, objects[1]))
        with open(os.path.join(data, "x86_64-cpuid-%s-json.xml" % host)) as f:
            cpu = fromstring(f.read())
        vendor = cpu.find("vendor")
        expected = GuestCpu(cpu.findtext("model"), None if vendor is None else vendor.text,
                             tuple((feature.get("policy"), feature.get("name")) for feature in cpu.findall("feature")))
        assert host_model(parse.Transcript([process]), 0, libvirt_cpu_map) == expected, host
        checked += 1
    assert checked >= 40


def _transcript(kvm, definitions, expansions=(), max_props=("unavailable-features", "migratable")):
    process = [
        ({"execute": "qmp_capabilities"}, {"return": {}}),
        ({"execute": "query-target"}, {"return": {"arch": "x86_64"}}),
        ({"execute": "query-kvm"}, {"return": {"enabled": kvm, "present": True}}),
        ({"execute": "qom-list-properties", "arguments": {"typename": "max-x86_64-cpu"}},
         {"return": [{"name": name, "type": "bool"} for name in max_props]}),
        ({"execute": "query-cpu-definitions"}, {"return": definitions}),
    ]
    process += [({"execute": "query-cpu-model-expansion"}, reply) for reply in expansions]
    return parse.Transcript([process])


def _expansion(props):
    return {"return": {"model": {"name": "base", "props": props}}}


def test_modes_from_a_small_transcript(libvirt_cpu_map):
    definitions = [
        {"name": "max", "unavailable-features": []},
        {"name": "host", "unavailable-features": []},
        {"name": "Penryn", "unavailable-features": ["pclmulqdq"]},
        {"name": "Icelake-Client", "unavailable-features": [], "deprecated": True},
        {"name": "qemu64"},  # no verdict from QEMU
        {"name": "not-in-the-map", "unavailable-features": []},
    ]
    props = {"vendor": "GenuineIntel", "family": 6, "model": 23, "stepping": 6,
             "fpu": True, "sse4.1": True, "tsc-adjust": False}
    mig_off = dict(props, **{"tsc-adjust": True})
    modes = cpu_modes(_transcript(True, definitions, [_expansion(props), _expansion(mig_off)]),
                      virttype="kvm", arch="x86_64", cpu_map=libvirt_cpu_map)
    assert modes.host_passthrough == ("on", "off")
    assert modes.maximum == ("on", "off")
    assert modes.custom == (CustomModel("Penryn", "no", False, "Intel", ("pclmuldq",)),
                            CustomModel("Icelake-Client", "yes", True, "Intel"),
                            CustomModel("qemu64", "unknown", False, None))
    host = modes.host_model
    assert host is not None and host.vendor == "Intel"
    # usable where the guest need not migrate: kept, in the map's spelling
    assert ("require", "tsc_adjust") in host.features
    lines = cpu_lines(modes)
    assert "      <model usable='yes' deprecated='yes' vendor='Intel'>Icelake-Client</model>" in lines
    assert "      <model usable='unknown' vendor='unknown'>qemu64</model>" in lines
    assert not any("not-in-the-map" in line or ">host<" in line for line in lines)


def test_tcg_without_a_second_process_uses_the_first(libvirt_cpu_map):
    modes = cpu_modes(_transcript(False, [{"name": "qemu64", "unavailable-features": []}], max_props=()),
                      virttype="qemu", arch="i686", cpu_map=libvirt_cpu_map)
    assert modes.host_passthrough == () and modes.maximum == () and modes.host_model is None
    assert cpu_lines(modes) == [
        "  <cpu>",
        "    <mode name='host-passthrough' supported='no'/>",
        "    <mode name='maximum' supported='no'/>",
        "    <mode name='host-model' supported='no'/>",
        "    <mode name='custom' supported='yes'>",
        "      <model usable='yes' vendor='unknown'>qemu64</model>",
        "    </mode>",
        "  </cpu>",
    ]


def test_passthrough_without_migratable_offers_off_only(libvirt_cpu_map):
    modes = cpu_modes(_transcript(True, [], max_props=("unavailable-features",)),
                      virttype="kvm", arch="x86_64", cpu_map=libvirt_cpu_map)
    assert modes.host_passthrough == ("off",)
    assert modes.custom == () and modes.host_model is None
    assert cpu_lines(modes)[-2] == "    <mode name='custom' supported='no'/>"


def test_a_vendor_libvirt_refuses_means_no_host_model(libvirt_cpu_map):
    props = {"vendor": "Short", "fpu": True}
    modes = cpu_modes(_transcript(True, [], [_expansion(props), _expansion(props)]),
                      virttype="kvm", arch="x86_64", cpu_map=libvirt_cpu_map)
    assert modes.host_model is None


@pytest.mark.parametrize("virttype,arch,message", [
    ("kvm", "x86_64", "could not use KVM"),
    ("xen", "x86_64", "virt type xen"),
    ("qemu", "aarch64", "not yet"),
])
def test_undecided_cases_are_one_error(libvirt_cpu_map, virttype, arch, message):
    with pytest.raises(CapsfastError, match=message):
        cpu_modes(_transcript(False, []), virttype=virttype, arch=arch, cpu_map=libvirt_cpu_map)


def test_an_i386_emulator_serves_i686_guests(libvirt_cpu_map):
    transcript = _transcript(True, [{"name": "qemu32", "unavailable-features": []}], max_props=())
    transcript.processes[0][1] = ({"execute": "query-target"}, {"return": {"arch": "i386"}})
    modes = cpu_modes(transcript, virttype="kvm", arch="i686", cpu_map=libvirt_cpu_map, host_arch="x86_64")
    assert modes.host_passthrough == ("off",)
    assert modes.custom == (CustomModel("qemu32", "yes", False, None),)
    transcript.processes[0][1] = ({"execute": "query-target"}, {"return": {"arch": "s390x"}})
    with pytest.raises(CapsfastError, match="'s390x' are not yet supported"):
        cpu_modes(transcript, virttype="kvm", arch="i686", cpu_map=libvirt_cpu_map)


@pytest.mark.parametrize("definitions,expansions", [
    ({"name": "Penryn"}, [{"return": []}]),
    ([{"name": 5}, {"name": "Penryn", "unavailable-features": "sse4.1", "deprecated": "yes"}, "x"],
     [{"return": {"model": "base"}}]),
    ([{"name": "Penryn", "unavailable-features": [1, None, "sse4.1"]}],
     [_expansion({"vendor": 12, "family": 1.5, "model": 1 << 70, "stepping": -1, "fpu": {"x": 1}, "lm": [True]}),
      _expansion([])]),
    ([], [{"error": {"class": "GenericError", "desc": "nope"}}, _expansion({"fpu": True})]),
    ([{"name": "Penryn", "unavailable-features": []}], [_expansion({"family": 0xFFFFFFFF, "model": 0xFFFF, "fpu": True})]),
])
def test_odd_replies_give_an_answer_or_no_host_model_never_a_crash(libvirt_cpu_map, definitions, expansions):
    modes = cpu_modes(_transcript(True, definitions, expansions), virttype="kvm", arch="x86_64",
                      cpu_map=libvirt_cpu_map)
    lines = cpu_lines(modes)
    assert lines[0] == "  <cpu>" and lines[-1] == "  </cpu>"


def _cpuid_file(path):
    """libvirt's cpudata file as CPU data."""
    from capsfast.cpu_map.x86_decode import cpu_data

    walk, msrs = {}, {}
    with open(path) as f:
        for item in fromstring(f.read()):
            a = item.attrib
            if item.tag == "cpuid":
                walk[(int(a["eax_in"], 16), int(a["ecx_in"], 16))] = tuple(
                    int(a[r], 16) for r in ("eax", "ebx", "ecx", "edx"))
            elif item.tag == "msr":
                msrs[int(a["index"], 16)] = int(a["eax"], 16) | int(a["edx"], 16) << 32
    return cpu_data(walk, msrs)


def test_libvirt_cputest_guest_decodes_of_host_cpuid(libvirt_src, libvirt_cpu_map):
    """cputest.c's cpuTestGuestCPUID: a host's CPUID decoded as a guest CPU
    (over the models QEMU listed, for the JSON_MODELS hosts), equal to
    x86_64-cpuid-<host>-guest.xml: the same decoder serves host-model where
    QEMU gives no expansion."""
    from capsfast.cpu_map.x86_decode import decode_guest
    from capsfast.parts.domcaps.cpu import feature_from_qemu

    data = os.path.join(libvirt_src, "tests", "cputestdata")
    with open(os.path.join(libvirt_src, "tests", "cputest.c")) as f:
        hosts = re.findall(r'DO_TEST_CPUID\(VIR_ARCH_X86_64, "([^"]+)", (JSON_\w+)\)', f.read())
    for host, kind in hosts:
        offered = None
        if kind in ("JSON_MODELS", "JSON_MODELS_REQUIRED"):
            with open(os.path.join(data, "x86_64-cpuid-%s.json" % host)) as f:
                definitions = _json_objects(f.read())[1]["return"]
            offered = {}
            for definition in definitions:
                offered.setdefault(definition["name"], tuple(
                    feature_from_qemu(name) for name in definition.get("unavailable-features", [])))
        with open(os.path.join(data, "x86_64-cpuid-%s-guest.xml" % host)) as f:
            cpu = fromstring(f.read())
        vendor = cpu.find("vendor")
        expected = GuestCpu(cpu.findtext("model"), None if vendor is None else vendor.text,
                            tuple((feature.get("policy"), feature.get("name")) for feature in cpu.findall("feature")))
        got = decode_guest(_cpuid_file(os.path.join(data, "x86_64-cpuid-%s.xml" % host)), libvirt_cpu_map, offered)
        assert got == expected, host
    assert len(hosts) >= 60


def test_without_qemus_expansion_host_model_is_the_hosts_cpu(libvirt_src, libvirt_cpu_map):
    """Where QEMU expands no host CPU, libvirt decodes the host's own CPU
    data, drops the features QEMU never takes and lets the model fall back."""
    data = _cpuid_file(os.path.join(libvirt_src, "tests", "cputestdata", "x86_64-cpuid-Core-i7-4510U.xml"))
    transcript = _transcript(True, [{"name": "Haswell", "unavailable-features": []}], [])
    assert cpu_modes(transcript, virttype="kvm", arch="x86_64", cpu_map=libvirt_cpu_map).host_model is None
    modes = cpu_modes(transcript, virttype="kvm", arch="x86_64", cpu_map=libvirt_cpu_map, host_cpu=data)
    host = modes.host_model
    assert host is not None and host.model == "Haswell" and host.vendor == "Intel"
    names = [name for _policy, name in host.features]
    assert "osxsave" not in names and "invtsc" in names
    assert "      <model fallback='allow'>Haswell</model>" in cpu_lines(modes)


def test_json_carries_the_facts_of_the_xml(libvirt_cpu_map, transcripts):
    from capsfast.render.domcaps_cpu import cpu_json

    for virttype in ("kvm", "qemu"):
        modes = cpu_modes(transcripts("8.0.0"), virttype=virttype, arch="x86_64", cpu_map=libvirt_cpu_map)
        facts = cpu_json(modes)
        xml = fromstring("\n".join(cpu_lines(modes)))
        for mode in xml.findall("mode"):
            assert facts[mode.get("name")]["supported"] == (mode.get("supported") == "yes")
        enum = xml.find("mode[@name='maximum']/enum")
        assert facts["maximum"]["migratable"] == [v.text for v in enum.findall("value")]
        host = xml.find("mode[@name='host-model']")
        assert facts["host-model"]["model"] == host.findtext("model")
        assert facts["host-model"]["fallback"] == host.find("model").get("fallback")
        assert facts["host-model"]["vendor"] == host.findtext("vendor")
        assert [(f["policy"], f["name"]) for f in facts["host-model"]["features"]] == [
            (f.get("policy"), f.get("name")) for f in host.findall("feature")]
        assert [(m["name"], m["usable"], m["deprecated"], m["vendor"] or "unknown")
                for m in facts["custom"]["models"]] == [
            (m.text, m.get("usable"), m.get("deprecated") == "yes", m.get("vendor"))
            for m in xml.findall("mode[@name='custom']/model")]
        assert modes.host_passthrough == () or facts["host-passthrough"]["migratable"] == ["on", "off"]

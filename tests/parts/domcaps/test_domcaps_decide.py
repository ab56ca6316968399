"""The document engine's decisions on small, hand-made transcripts: the
rules libvirt 9.0 applies, the host facts read on every call, and bad
requests or hostile replies as one CapsfastError."""
import pytest

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import decide
from capsfast.parts.domcaps.model import Environment
from capsfast.parts.domcaps.parse import Transcript
from capsfast.render.domcaps_libvirt import render

EMULATOR = "/usr/bin/qemu-system-x86_64"
ENV = Environment(kvm_max_vcpus=1024, sev_asids=(509, 451), vfio=True, swtpm=True, swtpm_versions=("2.0",))

MACHINES = [
    {"name": "pc-q35-8.0", "alias": "q35", "cpu-max": 288},
    {"name": "pc-i440fx-8.0", "alias": "pc", "cpu-max": 255, "is-default": True},
    {"name": "isapc", "cpu-max": 1},
    {"name": "none", "cpu-max": 1},
]


def exchange(command, value, arguments=None):
    sent = {"execute": command}
    if arguments is not None:
        sent["arguments"] = arguments
    return (sent, {"return": value} if not isinstance(value, Exception) else {"error": {"class": "GenericError"}})


def transcript(kvm=True, machines=MACHINES, tcg_machines=None, types=(), commands=(), target="x86_64",
               tpm_models=(), tpm_types=(), extra=()):
    first = [
        exchange("qmp_capabilities", {}),
        exchange("query-target", {"arch": target}),
        exchange("query-qmp-schema", []),
        exchange("query-commands", [{"name": c} for c in commands]),
        exchange("query-kvm", {"enabled": kvm, "present": kvm}),
        exchange("qom-list-types", [{"name": t} for t in types]),
        exchange("query-machines", machines),
        exchange("query-tpm-models", list(tpm_models)),
        exchange("query-tpm-types", list(tpm_types)),
        exchange("query-command-line-options", []),
    ] + list(extra)
    processes = [first]
    if kvm:
        processes.append([exchange("qmp_capabilities", {}),
                          exchange("query-machines", machines if tcg_machines is None else tcg_machines)])
    return Transcript(processes)


def caps(t, env=ENV, **kw):
    kw.setdefault("arch", "x86_64")
    kw.setdefault("machine", None)
    kw.setdefault("virttype", None)
    return decide.domain_caps_core(t, env, emulator=EMULATOR, **kw)


def test_defaults_kvm_and_libvirts_preferred_machine():
    c = caps(transcript())
    # QEMU's default is also "pc" here; libvirt's rule picks by alias.
    assert (c.domain, c.machine, c.vcpu_max) == ("kvm", "pc-i440fx-8.0", 255)


def test_preferred_machine_is_pc_even_where_qemu_defaults_to_another():
    machines = [dict(m, **{"is-default": m["name"] == "pc-q35-8.0"}) for m in MACHINES]
    assert caps(transcript(machines=machines)).machine == "pc-i440fx-8.0"


def test_qemus_default_where_there_is_no_pc():
    machines = [{"name": "microvm", "cpu-max": 288}, {"name": "pc-q35-8.0", "alias": "q35", "cpu-max": 288,
                                                      "is-default": True}]
    assert caps(transcript(machines=machines)).machine == "pc-q35-8.0"


def test_without_kvm_the_default_is_qemu_from_the_first_process():
    c = caps(transcript(kvm=False, machines=[{"name": "pc-i440fx-2.0", "alias": "pc", "cpu-max": 7}]))
    assert (c.domain, c.machine, c.vcpu_max) == ("qemu", "pc-i440fx-2.0", 7)


def test_tcg_machines_come_from_the_tcg_process():
    c = caps(transcript(tcg_machines=[{"name": "pc-i440fx-7.9", "alias": "pc", "cpu-max": 64}]), virttype="qemu")
    assert (c.machine, c.vcpu_max) == ("pc-i440fx-7.9", 64)


def test_alias_resolves_and_kvm_bounds_vcpus():
    env = Environment(kvm_max_vcpus=240)
    c = caps(transcript(), env, machine="q35")
    assert (c.machine, c.vcpu_max) == ("pc-q35-8.0", 240)
    # TCG is not bounded by KVM
    assert caps(transcript(), env, machine="q35", virttype="qemu").vcpu_max == 288


def test_kvm_limit_unreadable_fails_kvm_only():
    env = Environment(kvm_max_vcpus=None)
    with pytest.raises(CapsfastError, match="/dev/kvm cannot be opened"):
        caps(transcript(), env)
    assert caps(transcript(), env, virttype="qemu").vcpu_max == 255


def test_ide_bus_only_on_i440fx():
    assert "ide" in caps(transcript()).device("disk").enum("bus")
    assert "ide" not in caps(transcript(), machine="q35").device("disk").enum("bus")
    assert "ide" not in caps(transcript(), machine="isapc").device("disk").enum("bus")


def test_i686_is_served_by_the_x86_64_emulator():
    c = caps(transcript(), arch="i686")
    assert (c.arch, c.machine) == ("i686", "pc-i440fx-8.0")
    assert "<arch>i686</arch>" in render(c)


@pytest.mark.parametrize("kw,message", [
    ({"arch": "aarch64"}, "not yet supported"),
    ({"arch": "s390x"}, "not yet supported"),
    ({"virttype": "xen"}, "unknown virttype: xen"),
    ({"machine": "virt"}, "the machine 'virt' is not supported by emulator '%s'" % EMULATOR),
    ({"machine": "none"}, "the machine 'none' is not supported"),
])
def test_requests_the_transcript_cannot_serve(kw, message):
    with pytest.raises(CapsfastError) as e:
        caps(transcript(), **kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_kvm_asked_where_qemu_could_not_use_it():
    with pytest.raises(CapsfastError, match="the accel 'kvm' is not supported by '%s'" % EMULATOR):
        caps(transcript(kvm=False), virttype="kvm")


def test_an_emulator_of_another_arch():
    with pytest.raises(CapsfastError, match="architecture from emulator 'aarch64' doesn't match"):
        caps(transcript(target="aarch64"))


def test_swtpm_decides_the_emulator_backend_and_versions():
    t = transcript(tpm_models=["tpm-tis", "tpm-crb"], tpm_types=["passthrough", "emulator"])
    tpm = caps(t).device("tpm")
    assert tpm.enum("backendModel") == ("passthrough", "emulator", "external")
    assert tpm.enum("backendVersion") == ("2.0",)
    tpm = caps(t, Environment(kvm_max_vcpus=8, swtpm=False)).device("tpm")
    assert tpm.enum("backendModel") == ("passthrough",)
    assert [e.name for e in tpm.enums] == ["model", "backendModel"]


def test_tpm_without_a_frontend_is_not_supported():
    t = transcript(tpm_types=["passthrough", "emulator"])
    assert "<tpm supported='no'/>" in render(caps(t))


def test_vfio_backend_needs_the_host_and_qemu():
    t = transcript(types=["vfio-pci"])
    assert caps(t).device("hostdev").enum("pciBackend") == ("default", "vfio")
    no_iommu = Environment(kvm_max_vcpus=8, vfio=False)
    assert caps(t, no_iommu).device("hostdev").enum("pciBackend") == ()
    assert caps(transcript()).device("hostdev").enum("pciBackend") == ()
    assert "<enum name='pciBackend'/>" in render(caps(t, no_iommu))


def test_usb_hostdev_needs_a_usb_controller():
    assert caps(transcript()).device("hostdev").enum("subsysType") == ("pci", "scsi")
    assert caps(transcript(types=["qemu-xhci"])).device("hostdev").enum("subsysType") == ("usb", "pci", "scsi")


SEV = {"cbitpos": 51, "reduced-phys-bits": 1, "pdh": "x", "cert-chain": "y"}


def test_sev_counts_come_from_cpuid():
    t = transcript(types=["sev-guest"], extra=[exchange("query-sev-capabilities", SEV)])
    sev = caps(t).features.sev
    assert (sev.cbitpos, sev.reduced_phys_bits, sev.max_guests, sev.max_es_guests) == (51, 1, 59, 450)
    sev = caps(t, Environment(kvm_max_vcpus=8)).features.sev
    assert (sev.max_guests, sev.max_es_guests) == (0, 0)


def test_sev_built_in_but_unusable_is_not_supported():
    t = transcript(types=["sev-guest"], extra=[exchange("query-sev-capabilities", Exception())])
    assert caps(t).features.sev is None
    assert "<sev supported='no'/>" in render(caps(t))


def test_sgx_before_qemu_7_lists_no_sections_and_is_not_used():
    old = {"flc": False, "sgx1": True, "sgx2": False, "section-size": 1 << 20}
    t = transcript(types=["sgx-epc"], extra=[exchange("query-sgx-capabilities", old)])
    assert caps(t).features.sgx is None
    new = dict(old, sections=[{"node": 0, "size": 1 << 20}, {"node": 1, "size": 1 << 21}])
    del new["section-size"]
    t = transcript(types=["sgx-epc"], extra=[exchange("query-sgx-capabilities", new)])
    sgx = caps(t).features.sgx
    assert (sgx.section_size_kib, [(s.node, s.size_kib) for s in sgx.sections]) == (3072, [(0, 1024), (1, 2048)])


def hv_expansion(props):
    args = {"type": "full", "model": {"name": "host", "props": {"migratable": False, "hv-passthrough": True}}}
    return exchange("query-cpu-model-expansion", {"model": {"name": "host", "props": props}}, args)


def test_hyperv_from_the_passthrough_expansion():
    props = {"hv-relaxed": True, "hv-vapic": False, "hv-spinlocks": 4095, "hv-vendor-id": "",
             "hv-tlbflush": True, "hv-unknown-thing": True, "avx": True, "hv-avic": 0}
    hyperv = caps(transcript(extra=[hv_expansion(props)])).features.hyperv
    # libvirt's enum order; an empty vendor id still counts
    assert hyperv.enum("features") == ("relaxed", "spinlocks", "vendor_id", "tlbflush")


def test_hyperv_absent_where_qemu_expands_none():
    assert caps(transcript(extra=[hv_expansion({"hv-relaxed": False})])).features.hyperv is None
    assert "hyperv" not in render(caps(transcript()))


@pytest.mark.parametrize("bad", [
    [exchange("query-machines", "pc")],
    [exchange("query-machines", [{"alias": "pc"}])],
    [exchange("query-machines", [{"name": "pc", "cpu-max": -1}])],
    [exchange("qom-list-types", {"name": "x"})],
    [exchange("query-tpm-models", [1])],
])
def test_hostile_replies_are_one_error(bad):
    t = transcript()
    command = bad[0][0]["execute"]
    t.processes[0] = [e for e in t.processes[0] if e[0]["execute"] != command] + bad
    t.processes[1] = [e for e in t.processes[1] if e[0]["execute"] != command] + bad
    with pytest.raises(CapsfastError, match="^malformed QMP transcript: "):
        caps(t, virttype="qemu")


def test_records_are_immutable_values():
    a, b = caps(transcript()), caps(transcript())
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.machine = "x"
    assert a != caps(transcript(), machine="q35")

"""The host CPU decoder against libvirt 9.0's own corpus.

Each expected answer is libvirt's: ``cputestdata/x86_64-cpuid-<CPU>-host.xml``
is what libvirt's decoder made of ``x86_64-cpuid-<CPU>.xml`` with
``cpu_map/`` (tests/cpudecode/README.md).  Among them: Haswell i5-4670T
(model 60: TSX dropped, Haswell-noTSX), Core2 E6850 and Xeon 5110 (a model
with the matching signature beats one with fewer features), eight CPUs
with IA32_ARCH_CAPABILITIES data (Cooperlake is Cascadelake-Server without
it), AMD from Opteron to EPYC-Rome, Hygon.
"""
import glob
import os
import xml.etree.ElementTree as ET

import pytest

from capsfast.cpu_map import x86_map as cpumap
from capsfast.cpu_map import x86_decode as cpumodel
from capsfast.errors import CapsfastError

HERE = os.path.join(os.path.dirname(__file__), "cpudecode")
MAP_DIR = os.path.join(HERE, "cpu_map")
CASES = sorted(os.path.basename(p)[len("x86_64-cpuid-"):-len("-host.xml")]
               for p in glob.glob(os.path.join(HERE, "cputestdata", "x86_64-cpuid-*-host.xml")))


@pytest.fixture(scope="module")
def cpu_map():
    return cpumap.load(MAP_DIR)


def cpu_data_file(name):
    """(walk, msrs) of a libvirt cpudata file."""
    walk, msrs = {}, {}
    for item in ET.parse(os.path.join(HERE, "cputestdata", "x86_64-cpuid-%s.xml" % name)).getroot():
        a = item.attrib
        if item.tag == "cpuid":
            walk[(int(a["eax_in"], 16), int(a["ecx_in"], 16))] = tuple(int(a[r], 16) for r in ("eax", "ebx", "ecx", "edx"))
        elif item.tag == "msr":
            msrs[int(a["index"], 16)] = int(a["eax"], 16) | int(a["edx"], 16) << 32
    return walk, msrs


def expected(name):
    doc = ET.parse(os.path.join(HERE, "cputestdata", "x86_64-cpuid-%s-host.xml" % name)).getroot()
    sig = doc.find("signature")
    return cpumodel.Decoded(doc.findtext("model"), doc.findtext("vendor"),
                            tuple(f.get("name") for f in doc.findall("feature")),
                            tuple(int(sig.get(k)) for k in ("family", "model", "stepping")))


def test_the_corpus_is_there():
    assert len(CASES) >= 40
    for special in ("Core-i5-4670T", "Core2-E6850", "Xeon-5110", "Cooperlake", "Hygon-C86-7185-32-core",
                    "EPYC-7502-32-Core", "Atom-P5362"):
        assert special in CASES


@pytest.mark.parametrize("name", CASES)
def test_decode_equals_libvirt(cpu_map, name):
    walk, msrs = cpu_data_file(name)
    assert cpumodel.decode(cpumodel.cpu_data(walk, msrs), cpu_map) == expected(name)


def test_tsx_filter_and_signature_preference_decide(cpu_map):
    # The cases above that need each rule, shown to need it.
    walk, msrs = cpu_data_file("Core-i5-4670T")
    assert cpumodel.decode(cpumodel.cpu_data(walk, msrs), cpu_map).model == "Haswell-noTSX"
    # The same CPU as model 0x7c (not a broken-TSX one) keeps hle and rtm.
    eax, rest = walk[(1, 0)][0], walk[(1, 0)][1:]
    walk[(1, 0)] = (eax | 0x50000,) + rest
    decoded = cpumodel.decode(cpumodel.cpu_data(walk, msrs), cpu_map)
    assert decoded.model == "Haswell" and decoded.signature == (6, 0x7C, 3)
    walk, _ = cpu_data_file("Core2-E6850")
    decoded = cpumodel.decode(cpumodel.cpu_data(walk, {}), cpu_map)
    assert decoded.model == "Conroe" and "vme" in decoded.features  # core2duo lists fewer extras
    walk, msrs = cpu_data_file("Cooperlake")
    assert cpumodel.decode(cpumodel.cpu_data(walk, {}), cpu_map).model == "Cascadelake-Server"
    assert cpumodel.decode(cpumodel.cpu_data(walk, msrs), cpu_map).model == "Cooperlake"


def test_arch_capabilities_is_read_only_where_cpuid_shows_it(cpu_map):
    walk, _ = cpu_data_file("Cooperlake")
    assert cpumodel.wants_arch_capabilities(walk, cpu_map)
    walk, _ = cpu_data_file("Core2-E6850")
    assert not cpumodel.wants_arch_capabilities(walk, cpu_map)


def test_an_unknown_vendor_may_use_any_model(cpu_map):
    walk, _ = cpu_data_file("Core-i7-8700")
    walk[(0, 0)] = (walk[(0, 0)][0], 0x64636261, 0x6C6B6A69, 0x68676665)  # "abcdefghijkl"
    decoded = cpumodel.decode(cpumodel.cpu_data(walk, {}), cpu_map)
    # libvirt skips a model of another vendor only when the CPU's is known.
    assert decoded.vendor is None and decoded.model == "Skylake-Client-IBRS"


# -- the map itself ---------------------------------------------------------------

def copy_map(tmp_path):
    import shutil

    target = tmp_path / "map"
    shutil.copytree(MAP_DIR, target)
    return target


def test_map_order_is_libvirts(cpu_map):
    names = [m.name for m in cpu_map.models]
    assert names[0] == "486" and names.index("Haswell") < names.index("Skylake-Client")
    features = [name for name, _ in cpu_map.features]
    assert features[:3] == ["fpu", "vme", "de"]
    assert [name for name, _ in cpu_map.vendors] == ["Intel", "AMD", "Hygon"]
    assert cpu_map.files[0] == "index.xml" and "x86_features.xml" in cpu_map.files
    assert not any(f.startswith(("arm_", "ppc64_")) for f in cpu_map.files)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "x86_Haswell.xml").write_text("<cpus><model name='Haswell'>"), "x86_Haswell.xml is not well-formed"),
    (lambda d: (d / "x86_Haswell.xml").unlink(), "x86_Haswell.xml: No such file"),
    (lambda d: (d / "index.xml").unlink(), "index.xml: No such file"),
    (lambda d: (d / "index.xml").write_text("<cpus><arch name='ppc64'/></cpus>"), "cannot find CPU map for x86"),
    (lambda d: (d / "x86_Haswell.xml").write_text(
        "<cpus><model name='Haswell'><decode host='on' guest='on'/><feature name='nosuch'/></model></cpus>"),
     "feature nosuch not found"),
    (lambda d: (d / "x86_features.xml").write_text(
        "<cpus><feature name='fpu'><cpuid eax_in='zz' edx='1'/></feature></cpus>"), "'zz' is not a number"),
    (lambda d: (d / "index.xml").write_text(
        "<cpus><arch name='x86'><include filename='../../etc/passwd'/></arch></cpus>"), "not a file name"),
    (lambda d: (d / "x86_Haswell.xml").write_text(
        "<!DOCTYPE x [<!ENTITY a 'aaaa'>]><cpus>&a;</cpus>"), "declares entities"),
    (lambda d: (d / "x86_Haswell.xml").write_bytes(b"<cpus>" + b" " * (5 << 20) + b"</cpus>"), "larger than"),
    (lambda d: ((d / "x86_Haswell.xml").unlink(), os.mkfifo(d / "x86_Haswell.xml")), "not a regular file"),
])
def test_a_bad_map_is_named(tmp_path, damage, message):
    directory = copy_map(tmp_path)
    damage(directory)
    with pytest.raises(CapsfastError, match="CPU map .*" + message.replace(".", r"\.").replace("(", r"\(")):
        cpumap.load(str(directory))


def test_a_map_in_a_root_stays_in_it(tmp_path):
    root = tmp_path / "root"
    directory = root / "usr/share/libvirt/cpu_map"
    directory.parent.mkdir(parents=True)
    copy_map(tmp_path).rename(directory)
    assert cpumap.load(str(directory), str(root)).models
    outside = tmp_path / "outside.xml"
    (directory / "x86_Haswell.xml").rename(outside)
    (directory / "x86_Haswell.xml").symlink_to(outside)
    with pytest.raises(CapsfastError, match="leads out of"):
        cpumap.load(str(directory), str(root))
    assert cpumap.load(str(directory)).models  # without a root, a link is a link

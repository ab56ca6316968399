"""Property tests (hypothesis, bounded) for every reader of outside input:
the ``cpuid -r`` dump reader, the /proc/cpuinfo first-block reader, the Xen
capability tokens, a fake root full of arbitrary bytes, and the CLI's
argument handling.

Properties: no exception but CapsfastError (the CLI: an exit status, and
for bad input exactly one ``capsfast: `` line on stderr); what we render
parses back to the same thing.  fuzz/ holds atheris harnesses of the same
readers for longer runs.
"""
import contextlib
import io
import json
import os
import string
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402

from capsfast import CapsfastError, _native  # noqa: E402
from capsfast.recording import collector
from capsfast.parts.core import parse
from capsfast.parts.core import read as facts
from capsfast import host as probing
from capsfast.render import json as render_json  # noqa: E402


# Enough to find the classic slips in a parser, small enough for CI (the
# whole module runs in well under a minute); the atheris harnesses run
# longer.  CAPSFAST_FUZZ_EXAMPLES scales it.
EXAMPLES = int(os.environ.get("CAPSFAST_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

u32 = st.integers(min_value=0, max_value=0xFFFFFFFF)
regs = st.tuples(u32, u32, u32, u32)

# ---------------------------------------------------------------- dump reader


def dump_line(leaf, subleaf, r):
    return "   0x%08x 0x%02x: eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x" % ((leaf, subleaf) + tuple(r))


# Text that looks like a dump half of the time: real lines mixed with junk.
dump_words = st.one_of(
    st.builds(dump_line, st.sampled_from(parse.LEAVES + (2, 7, 0x80000008)), st.integers(0, 3), regs),
    st.sampled_from(["CPU:", "CPU 0:", "CPU 1:", "CPU", "", "   ", "0x1 0x0:", "eax=0x1",
                     "0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x100000000",
                     "0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=-0x1",
                     "0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 ebx=0x4",
                     "-0x1 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4",
                     "0x1_0 0x0_0: eax=0x_1 ebx=0x2 ecx=0x3 edx=0x4"]),
    st.text(max_size=80),
)
dump_text = st.lists(dump_words, max_size=30).map("\n".join)


@FUZZ
@given(dump_text)
def test_dump_reader_raises_only_capsfast_error(text):
    try:
        leaves = parse.leaves_from_dump(text, "fuzz")
    except CapsfastError as e:
        assert "\n" not in str(e)
        return
    assert len(leaves) == len(parse.LEAVES)
    assert all(len(r) == 4 and all(0 <= v <= 0xFFFFFFFF for v in r) for r in leaves)
    # What we render parses back to the same leaves.
    assert parse.leaves_from_dump(collector.format_walk([(leaf, 0, r) for leaf, r in zip(parse.LEAVES, leaves)]), "again") == leaves
    # Decoding never fails and yields text every output format can carry.
    cpu = parse.cpu_from_leaves(leaves, "dump")
    vendor = parse.hypervisor_vendor(parse.hypervisor_signature(leaves))
    for s in (cpu.vendor, vendor):
        assert s is None or all(ch == "\ufffd" or " " <= ch <= "~" for ch in s)


@FUZZ
@given(st.binary(max_size=600))
def test_dump_reader_on_arbitrary_bytes(data):
    text = data.decode("utf-8", "replace")
    try:
        parse.leaves_from_dump(text, "fuzz")
    except CapsfastError:
        pass


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(parse.LEAVES + (2, 7, 0x80000008, 0x40000001)), regs), max_size=12),
       st.integers(0, 3), st.sampled_from(["CPU:", "CPU 0:", None]))
def test_dump_round_trip_of_generated_dumps(rows, other_cpus, header):
    """A dump we generate (leaf 0 first, any leaves, more CPUs after)
    reads back as the first CPU's gated leaves."""
    table = {0: rows[0][1] if rows else (1, 2, 3, 4)}
    lines = [header] if header else []
    lines.append(dump_line(0, 0, table[0]))
    for leaf, r in rows[1:]:
        lines.append(dump_line(leaf, 1, (9, 9, 9, 9)))  # subleaf 1: ignored
        lines.append(dump_line(leaf, 0, r))
        table.setdefault(leaf, r)
    for n in range(1, other_cpus + 1):
        lines.append("CPU %d:" % n)
        lines.append(dump_line(0, 0, (n, n, n, n)))
    if other_cpus and not header:
        return  # without a first header, the second CPU's lines are not told apart
    leaves = parse.leaves_from_dump("\n".join(lines) + "\n")
    assert leaves == parse.gate(lambda leaf: table.get(leaf, parse.ZERO))
    assert parse.leaves_from_dump(collector.format_walk([(leaf, 0, r) for leaf, r in zip(parse.LEAVES, leaves)])) == leaves


# ----------------------------------------------------------- /proc/cpuinfo


cpuinfo_lines = st.one_of(
    st.builds("{}\t: {}".format, st.sampled_from(["processor", "vendor_id", "cpu family", "model", "stepping",
                                                  "flags", "model name", " flags ", "Features"]),
              st.text(max_size=40)),
    st.sampled_from(["", ":", "::", "flags", "flags:", "\t:", "\x00", "\xff"]),
    st.text(max_size=40),
)


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.lists(cpuinfo_lines, max_size=20).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogateescape"))))
def test_cpuinfo_reader_never_fails(data):
    block = parse.cpuinfo_first_block(data)
    assert isinstance(block, dict)
    for key, value in block.items():
        assert key == key.strip() and value == value.strip()
        assert not any(ord(ch) < 32 and ch not in "\t" for ch in key + value)
    flags = parse.kernel_flags(block)
    assert flags is None or all(f and not f.isspace() for f in flags)
    # Only the first block counts: more blocks change nothing.
    if b"\n\n" not in data:
        assert parse.cpuinfo_first_block(data + b"\n\nflags\t: vmx svm\n") == block


flag_names = st.lists(st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12),
                      max_size=30)


@FUZZ
@given(flag_names, st.text(alphabet=string.ascii_letters + " ", max_size=20), st.integers(1, 5))
def test_cpuinfo_flags_round_trip(flags, vendor, cpus):
    """The flags we put in a first block are the flags we read back."""
    block = "processor\t: 0\nvendor_id\t: %s\nflags\t\t: %s\n" % (vendor, " ".join(flags))
    others = "".join("\nprocessor\t: %d\nflags\t\t: other\n" % n for n in range(1, cpus))
    fields = parse.cpuinfo_first_block((block + others).encode())
    assert parse.kernel_flags(fields) == tuple(flags)
    assert fields["vendor_id"] == vendor.strip()


# -------------------------------------------------------------- Xen tokens

xen_text = st.one_of(
    st.lists(st.sampled_from(["xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32", "hvm-3.0-x86_32p",
                              "hvm-3.0-x86_64", "control_d", "xen-3.0-", "hvm--", "-", "hvm-3.0-x86_64\x00",
                              "\t", "\r\n", "\u00a0", "\xff"]), max_size=10).map(" ".join),
    st.text(max_size=100),
)


ABSENT = _native.Outcome("absent", "No such file or directory")


def as_result(text):
    """A crossing's result for a small file holding ``text`` (None: absent)."""
    if text is None:
        return _native.FileResult(ABSENT, 0, None, False, None)
    return _native.FileResult(_native.OK, 0o100644, text.encode("utf-8", "surrogateescape"), False, None)


@FUZZ
@given(st.booleans(), st.one_of(st.none(), xen_text), st.one_of(st.none(), xen_text), st.one_of(st.none(), xen_text))
def test_xen_tokens(proc_xen, caps, hv_type, hv_caps):
    read = [facts.text("/", "/x", as_result(t)) for t in (caps, hv_type, hv_caps)]
    xen = parse.xen_facts(proc_xen, *read)
    assert xen.role in (None, "dom0", "domU")
    assert all(t and not any(ch.isspace() for ch in t) for t in xen.capabilities)
    assert all(ord(ch) >= 32 for t in xen.capabilities for ch in t)
    # Rendered as JSON and parsed back, the tokens are the same.
    doc = json.loads(render_json.dumps({"capabilities": list(xen.capabilities), "type": xen.hypervisor_type}))
    assert doc == {"capabilities": list(xen.capabilities), "type": xen.hypervisor_type}


# ----------------------------------------------------- a fake root of junk

FILES = ("proc/cpuinfo", "proc/xen/capabilities", "sys/hypervisor/type",
         "sys/hypervisor/properties/capabilities", "sys/module/kvm_intel/parameters/nested",
         "proc/sys/kernel/arch", "dev/cpu/0/msr")


@settings(max_examples=max(EXAMPLES // 4, 20), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(FILES), st.binary(max_size=300), max_size=len(FILES)))
def test_fake_root_of_arbitrary_bytes(contents):
    """Any bytes in any file the probe reads: an answer, or CapsfastError;
    the JSON we render for the answer parses back to the model's values."""
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "proc/xen"))
        for rel, data in contents.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        try:
            host = probing.probe(root=root)
        except CapsfastError as e:
            assert "\n" not in str(e)
            return
        text = render_json.render(host)
        assert json.loads(text) == render_json.host_dict(host)


# -------------------------------------------------------------------- CLI

cli_words = st.one_of(
    st.sampled_from(["capabilities", "check", "--format", "json", "libvirt", "draft", "--root", "/",
                     "--cpuid-dump", "--arch", "x86_64", "aarch64", "--deep", "--json", "-q", "--quiet",
                     "-h", "--help", "--version", "--", "-", "--format=json", "--root=", "--arch=",
                     "--deep=1", "-x", "/nonexistent", ".", "a\x0bb", "\x1b[31mred", "tab\there", "\udcff"]),
    st.text(max_size=20),
)


@contextlib.contextmanager
def captured():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


@FUZZ
@given(st.lists(cli_words, max_size=8))
@example(["check", "--cpuid-dump", "a\x0bb"])
@example(["capabilities", "--root", "\x1b[31mred"])
def test_cli_arguments(argv):
    """Any arguments: an exit status, never an exception; status 2 comes
    with exactly one ``capsfast: `` line (or the usage)."""
    from capsfast import cli

    if argv[:1] == ["record"]:
        argv = argv[1:]  # record writes where it is told; tested elsewhere
    with tempfile.TemporaryDirectory() as cwd:
        old = os.getcwd()
        os.chdir(cwd)
        try:
            with captured() as (out, err):
                status = cli.main(argv)
        finally:
            os.chdir(old)
        assert os.listdir(cwd) == []  # nothing written
    assert status in (0, 1, 2)
    if status == 2 and err.getvalue() and not err.getvalue().startswith("usage:"):
        # One line: no control character a terminal would act on, whatever
        # the arguments held.
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("capsfast: "), err.getvalue()
        assert lines[0].isprintable(), lines[0]


# ------------------------------- Xen guests and the libvirt XML round trip

xen_token = st.one_of(
    st.builds("{}-{}.{}-{}{}".format, st.sampled_from(["xen", "hvm", "pv", "XEN"]), st.integers(0, 12),
              st.integers(0, 12), st.sampled_from(["x86_32", "x86_64", "ia64", "powerpc64", "arm", ""]),
              st.sampled_from(["", "p", "be", "pp", "x"])),
    st.text(alphabet=string.printable + "\u0663\u00b2", max_size=20),
)


@FUZZ
@given(st.lists(xen_token, max_size=8), st.sampled_from(["x86_64", "i686", "aarch64"]))
def test_xen_guests_from_any_tokens_round_trip_through_libvirt_xml(tokens, arch):
    """A dom0 with any capability tokens: guests built, rendered as libvirt
    XML, read back by our reader: the same guests."""
    lxml = pytest.importorskip("lxml")  # noqa: F841 - the XML renderer and reader need it
    from capsfast import libvirt_xml
    from capsfast.parts.guests import decide as guests
    from capsfast.model import Xen
    from capsfast.render import libvirt as render_libvirt

    text = facts.text("/", "/x", as_result(" ".join(tokens)))
    xen = parse.xen_facts(True, "control_d\n", "xen", text)
    got = guests.xen_guests(arch, Xen(xen.present, "dom0", xen.hypervisor_type, xen.capabilities))
    assert all(g.os_type in ("xen", "hvm") and g.domains == ("xen",) for g in got)
    host = probing.probe(root=_empty_root(), arch=arch)._replace(guests=got)
    back = libvirt_xml.read(render_libvirt.render(host))
    assert back.arch == arch
    assert back.guests == got


_EMPTY_ROOT = []


def _empty_root():
    if not _EMPTY_ROOT:
        _EMPTY_ROOT.append(tempfile.mkdtemp(prefix="capsfast-fuzz-"))
    return _EMPTY_ROOT[0]


xml_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from([
        "<capabilities>", "</capabilities>", "<host>", "</host>", "<cpu>", "</cpu>", "<arch>x86_64</arch>",
        "<features>", "</features>", "<pae/>", "<vmx/>", "<guest>", "</guest>", "<os_type>hvm</os_type>",
        "<arch name='x86_64'>", "<arch>", "</arch>", "<wordsize>64</wordsize>", "<wordsize>x</wordsize>",
        "<emulator>/usr/bin/qemu</emulator>", "<machine canonical='pc-1'>pc</machine>", "<machine/>",
        "<domain type='kvm'/>", "<domain/>", "<loader>/x</loader>", "<!-- c -->", "<?pi x?>", "&amp;",
        "&ent;", "<!DOCTYPE capabilities [<!ENTITY ent 'x'>]>", "<![CDATA[x]]>", "\x00", "\ufffd",
        "<capabilities xmlns='urn:x'>", "<x:capabilities xmlns:x='urn:x'>",
    ]), max_size=25).map("".join),
)


@FUZZ
@given(st.one_of(xml_text, xml_text.map(lambda s: s.encode("utf-8")), st.binary(max_size=300)))
def test_libvirt_xml_reader_raises_only_capsfast_error(data):
    pytest.importorskip("lxml")
    from capsfast import libvirt_xml

    try:
        caps = libvirt_xml.read(data)
    except CapsfastError as e:
        assert "\n" not in str(e)
        return
    assert all(isinstance(g.wordsize, int) for g in caps.guests)


@settings(max_examples=max(EXAMPLES // 8, 10), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["x86_64", "i686", "aarch64", "ppc64le", "s390x"]), st.booleans(), st.booleans())
def test_probed_hosts_round_trip_through_libvirt_xml(arch, kvm_node, kqemu):
    """What we render for a probed fake root, our reader gives back."""
    pytest.importorskip("lxml")
    from capsfast import libvirt_xml
    from capsfast.render import libvirt as render_libvirt

    with tempfile.TemporaryDirectory() as root:
        for rel in ("usr/bin/qemu-system-x86_64", "usr/bin/qemu-system-aarch64", "usr/bin/qemu-system-i386"):
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(path, 0o755)
        os.makedirs(os.path.join(root, "dev"))
        if kvm_node:
            open(os.path.join(root, "dev/kvm"), "w").close()
        if kqemu:
            open(os.path.join(root, "dev/kqemu"), "w").close()
        host = probing.probe(root=root, arch=arch)
        back = libvirt_xml.read(render_libvirt.render(host))
    assert back.arch == host.arch
    assert back.guests == host.guests
    assert back.host_features == render_libvirt.host_features(host)


# ---------------------------------------------------------------- libvirt CPU map

_MAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpudecode", "cpu_map")
_MAP_FILES = ("index.xml", "x86_vendors.xml", "x86_features.xml", "x86_Haswell.xml", "x86_EPYC.xml")


@FUZZ
@given(st.sampled_from(_MAP_FILES), st.data())
def test_cpu_map_reader_never_raises_anything_but_capsfast_error(name, data):
    """A CPU map file cut, spliced or sprinkled with garbage (bytes, XML
    fragments, odd numbers) loads, or is named in a CapsfastError; a map
    that loads decodes a CPU without an exception."""
    import shutil

    from capsfast.cpu_map import x86_map as cpumap
    from capsfast.cpu_map import x86_decode as cpumodel

    with open(os.path.join(_MAP_DIR, name), "rb") as f:
        original = f.read()
    at = data.draw(st.integers(min_value=0, max_value=len(original)))
    cut = data.draw(st.integers(min_value=0, max_value=64))
    insert = data.draw(st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"<feature name='x'>", b"</model>", b"eax_in='0x'", b"edx='-1'", b"ecx_in='0777'",
                         b"<cpuid eax_in='0x1' edx='0xffffffffff'/>", b"<model name='486'/>", b"stepping='9-1'",
                         b"<decode host='maybe' guest='on'/>", b"<vendor name='Intel' string='GenuineIntel'/>",
                         b"<include filename='x86_features.xml'/>", b"\xff\xfe", b"&amp;", b"<![CDATA[x]]>"]),
    ))
    mutated = original[:at] + insert + original[at + cut:]
    # And an attribute's value replaced: what XML parsing lets through.
    values = [m.span(1) for m in __import__("re").finditer(rb"='([^']*)'", mutated)]
    if values:
        start, end = values[data.draw(st.integers(min_value=0, max_value=len(values) - 1))]
        value = data.draw(st.one_of(st.sampled_from(
            [b"", b"0x", b"-1", b"zz", b"0x1ffffffff", b"9-1", b"0-16", b"^3", b"on", b"0777", b"08",
             b"\xef\xbc\x91", b"GenuineIntelX", b"nosuch", b"486"]), st.text(max_size=8).map(
                 lambda t: t.replace("'", "").replace("<", "").replace("&", "").encode("utf-8"))))
        mutated = mutated[:start] + value + mutated[end:]
    with tempfile.TemporaryDirectory() as tmp:
        directory = os.path.join(tmp, "map")
        shutil.copytree(_MAP_DIR, directory)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(mutated)
        try:
            loaded = cpumap.load(directory)
        except CapsfastError as e:
            assert str(e).startswith("CPU map ") and "\n" not in str(e)
            return
        walk = {(0, 0): (0xD, 0x756E6547, 0x6C65746E, 0x49656E69), (1, 0): (0x306C3, 0, 0x7FFAFBFF, 0xBFEBFBFF),
                (7, 0): (0, 0x27AB, 0, 0x9C000000)}
        cpumodel.decode(cpumodel.cpu_data(walk, {0x10A: 0x1EB}), loaded)

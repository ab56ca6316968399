"""Firmware descriptors and the <os> of domain capabilities, against
libvirt 9.0's own tests: qemufirmwaretest (which files, in which order,
what each parses to, what a machine is offered) and the <os> of every
x86_64 document domaincapstest checks; then hostile trees and files."""
import glob
import json
import os
import re

import pytest

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import firmware, parse, read
from capsfast.render.domcaps_os import os_lines


def firmware_tree(libvirt_src):
    """libvirt's test tree, laid out as a root: usr/share, etc and a user's
    home/user/.config each hold a qemu/firmware directory."""
    return os.path.join(libvirt_src, "tests", "qemufirmwaredata")


def libvirt_test_descriptors(libvirt_src):
    # qemufirmwaretest and domaincapstest run unprivileged, with the user's
    # configuration in /home/user/.config
    files = read.search_descriptors(firmware_tree(libvirt_src), privileged=False,
                                    xdg_config_home="/home/user/.config")
    return parse.descriptors(files)


# --- qemufirmwaretest -------------------------------------------------------

def test_precedence_as_libvirt_finds_it(libvirt_src):
    files = read.search_descriptors(firmware_tree(libvirt_src), privileged=False,
                                    xdg_config_home="/home/user/.config")
    # etc's 40-ovmf-sb-keys.json is a symlink to usr's 50; etc's empty
    # 60-ovmf-sb.json masks usr's; the user's empty 10-bios.json masks nothing
    assert [path for path, _ in files] == [
        "/usr/share/qemu/firmware/40-bios.json",
        "/etc/qemu/firmware/40-ovmf-sb-keys.json",
        "/usr/share/qemu/firmware/45-ovmf-sev-stateless.json",
        "/usr/share/qemu/firmware/50-ovmf-sb-keys.json",
        "/usr/share/qemu/firmware/55-ovmf-sb-combined.json",
        "/usr/share/qemu/firmware/61-ovmf.json",
        "/usr/share/qemu/firmware/70-aavmf.json",
    ]
    tree = firmware_tree(libvirt_src)
    for path, data in files:
        with open(tree + path, "rb") as f:
            assert data == f.read()


@pytest.mark.parametrize("name", [
    "40-bios.json", "45-ovmf-sev-stateless.json", "50-ovmf-sb-keys.json", "55-ovmf-sb-combined.json",
    "60-ovmf-sb.json", "61-ovmf.json", "70-aavmf.json",
])
def test_parse_as_libvirt_formats_it_back(libvirt_src, name):
    tree = firmware_tree(libvirt_src)
    path = "/usr/share/qemu/firmware/" + name
    with open(tree + path, "rb") as f:
        descriptor = parse.descriptor(path, f.read())
    # libvirt's expected re-formatting where it differs from the input
    out = os.path.join(tree, "out") + path
    with open(out if os.path.exists(out) else tree + path) as f:
        expected = without_formats(json.load(f))
    assert described(descriptor) == {k: v for k, v in expected.items() if k not in ("description", "tags")}


def described(descriptor):
    """The descriptor in libvirt's JSON layout (qemuFirmwareFormat), less
    the image formats, which nothing reads."""
    mapping = {"device": descriptor.device}
    if descriptor.device == "flash":
        mapping["mode"] = descriptor.mode
        mapping["executable"] = descriptor.executable
        if descriptor.nvram_template is not None:
            mapping["nvram-template"] = descriptor.nvram_template
    else:
        mapping["filename"] = descriptor.filename
    qemu_arch = {"i686": "i386", "armv7l": "arm", "openrisc": "or32"}
    return {
        "interface-types": list(descriptor.interfaces),
        "mapping": mapping,
        "targets": [{"architecture": qemu_arch.get(arch, arch), "machines": list(machines)}
                    for arch, machines in descriptor.targets],
        "features": list(descriptor.features),
    }


def without_formats(doc):
    """``doc`` with each image's "format" left out, as described() does."""
    for key in ("executable", "nvram-template"):
        if isinstance(doc.get("mapping", {}).get(key), dict):
            doc["mapping"][key] = doc["mapping"][key]["filename"]
    return doc


# qemufirmwaretest's DO_SUPPORTED_TEST: machine, arch, secure, (image, nvram)
# pairs, interfaces
SUPPORTED = [
    ("pc-i440fx-3.1", "x86_64", False,
     [("/usr/share/seabios/bios-256k.bin", None), ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd")],
     ("bios", "efi")),
    ("pc-i440fx-3.1", "i686", False, [("/usr/share/seabios/bios-256k.bin", None)], ("bios",)),
    ("pc-q35-3.1", "x86_64", True,
     [("/usr/share/seabios/bios-256k.bin", None),
      ("/usr/share/OVMF/OVMF_CODE.secboot.fd", "/usr/share/OVMF/OVMF_VARS.secboot.fd"),
      ("/usr/share/OVMF/OVMF.sev.fd", None),
      ("/usr/share/OVMF/OVMF.secboot.fd", None),
      ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd")],
     ("bios", "efi")),
    ("pc-q35-3.1", "i686", False, [("/usr/share/seabios/bios-256k.bin", None)], ("bios",)),
    ("virt-3.1", "aarch64", False,
     [("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")], ("efi",)),
]


@pytest.mark.parametrize("machine,arch,secure,pairs,interfaces", SUPPORTED,
                         ids=["%s-%s" % (s[0], s[1]) for s in SUPPORTED])
def test_supported_as_libvirt_sums_it_up(libvirt_src, machine, arch, secure, pairs, interfaces):
    descriptors = libvirt_test_descriptors(libvirt_src)
    assert firmware.supported(descriptors, arch=arch, machine=machine) == (interfaces, secure, pairs)
    caps = firmware.os_caps(descriptors, arch=arch, machine=machine, exists=lambda path: True)
    assert caps.firmware == interfaces
    assert caps.loaders == tuple(image for image, _ in pairs)
    assert caps.loader_secure == (("yes", "no") if secure else ("no",))


# --- domaincapstest: the <os> of every x86_64 document ------------------------

# domaincapstest replaces the loader images it computed with this list, "as
# we are expecting to see OVMF_CODE.fd file which may not exist everywhere"
DOMAINCAPSTEST_LOADERS = (
    "/usr/share/AAVMF/AAVMF_CODE.fd",
    "/usr/share/AAVMF/AAVMF32_CODE.fd",
    "/usr/share/OVMF/OVMF_CODE.fd",
)


def domaincaps_documents(libvirt_src):
    return sorted(glob.glob(os.path.join(libvirt_src, "tests", "domaincapsdata", "qemu_*.x86_64.xml")))


def test_os_of_every_x86_64_domaincaps_document(libvirt_src):
    documents = domaincaps_documents(libvirt_src)
    assert len(documents) == 33
    descriptors = libvirt_test_descriptors(libvirt_src)
    for path in documents:
        with open(path) as f:
            text = f.read()
        machine = re.search(r"^  <machine>(.*)</machine>$", text, re.M).group(1)
        expected = re.search(r"^  <os supported='yes'>\n(.*\n)*?  </os>\n", text, re.M).group(0)
        caps = firmware.os_caps(descriptors, arch="x86_64", machine=machine, exists=lambda p: True)
        caps = caps.replace(loaders=DOMAINCAPSTEST_LOADERS)
        assert "\n".join(os_lines(caps)) + "\n" == expected, path


# --- choices libvirt makes beyond its tests ------------------------------------

def fake_descriptor(name, interfaces, machines, *, executable, nvram="/fw/VARS.fd", features=(), arch="x86_64"):
    mapping = {"device": "flash", "executable": {"filename": executable, "format": "raw"}}
    if nvram is not None:
        mapping["nvram-template"] = {"filename": nvram, "format": "raw"}
    else:
        mapping["mode"] = "combined"
    doc = {"interface-types": interfaces, "mapping": mapping,
           "targets": [{"architecture": arch, "machines": machines}], "features": list(features)}
    return parse.descriptor("/usr/share/qemu/firmware/" + name, json.dumps(doc).encode())


def test_builtin_loaders_where_no_descriptor_serves_the_machine():
    descriptors = [fake_descriptor("60-ovmf.json", ["uefi"], ["pc-q35-*"], executable="/fw/CODE.fd")]
    present = {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_CODE.fd", "/fw/CODE.fd"}
    caps = firmware.os_caps(descriptors, arch="x86_64", machine="isapc", exists=present.__contains__)
    assert caps.firmware == ()
    assert caps.loaders == ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_CODE.fd")
    assert caps.loader_secure == ("no",)
    assert os_lines(caps)[1] == "    <enum name='firmware'/>"
    # a descriptor serving the machine replaces the built-in list, even with
    # an image not on the host
    caps = firmware.os_caps(descriptors, arch="x86_64", machine="pc-q35-7.2", exists=lambda p: False)
    assert (caps.firmware, caps.loaders) == (("efi",), ())


def test_qemu_conf_nvram_entries_as_libvirt_reads_them():
    assert firmware.nvram_loaders(["/a/CODE.fd:/a/VARS.fd", " /b.fd: /c.fd"]) == (
        ("/a/CODE.fd", "/a/VARS.fd"), ("/b.fd", "/c.fd"))
    for bad in ("/a.fd", "/a.fd:", ":/b.fd", "/a:/b:/c", " : "):
        with pytest.raises(CapsfastError, match="^invalid nvram entry in qemu.conf"):
            firmware.nvram_loaders([bad])
    caps = firmware.os_caps([], arch="x86_64", machine="pc-q35-7.2", exists=lambda p: True,
                            builtin=firmware.nvram_loaders(["/b.fd:/c.fd"]))
    assert caps.loaders == ("/b.fd",)


def test_loader_images_listed_once_present_only():
    descriptors = [
        fake_descriptor("40-a.json", ["uefi"], ["pc-q35-*"], executable="/fw/SB.fd", features=["requires-smm"]),
        fake_descriptor("50-b.json", ["uefi"], ["pc-*"], executable="/fw/SB.fd", nvram="/fw/OTHER.fd"),
        fake_descriptor("55-c.json", ["uefi"], ["pc-?35-*"], executable="/fw/GONE.fd"),
        fake_descriptor("60-d.json", ["bios", "uefi"], ["pc-q35-[7]*"], executable="/fw/GLOB.fd"),
        fake_descriptor("70-e.json", ["bios"], ["pc-q35-*"], executable="/fw/I386.fd", arch="i386"),
    ]
    caps = firmware.os_caps(descriptors, arch="x86_64", machine="pc-q35-7.2",
                            exists=lambda p: p != "/fw/GONE.fd")
    # "[" is no glob character for GLib; the i386 one serves i686 only
    assert caps.firmware == ("efi",)
    assert caps.loaders == ("/fw/SB.fd",)
    assert caps.loader_secure == ("yes", "no")
    caps = firmware.os_caps(descriptors, arch="i686", machine="pc-q35-7.2", exists=lambda p: True)
    assert (caps.firmware, caps.loaders, caps.loader_secure) == (("bios",), ("/fw/I386.fd",), ("no",))


def test_loader_values_escaped_as_libvirt_escapes_them():
    caps = firmware.OsCaps(("efi",), ("/fw/a&b<'\">\x01\x1f.fd",), loader_secure=("no",))
    # libvirt would write 0x1F raw; capsfast writes U+FFFD: well-formed XML
    assert os_lines(caps)[5] == "      <value>/fw/a&amp;b&lt;&apos;&quot;&gt;\ufffd.fd</value>"


# --- the search over hostile or unusual trees ------------------------------------

def write(root, path, text):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def test_search_skips_hidden_and_directories_and_reads_the_users_config_unprivileged(tmp_path):
    write(tmp_path, "/usr/share/qemu/firmware/50-a.json", "{}")
    write(tmp_path, "/usr/share/qemu/firmware/.hidden.json", "{}")
    os.makedirs(str(tmp_path / "usr/share/qemu/firmware/60-dir.json"))
    write(tmp_path, "/etc/qemu/firmware/10-b.json", "{}")
    write(tmp_path, "/home/u/.config/qemu/firmware/50-a.json", '{"mine": 1}')
    write(tmp_path, "/xdg/qemu/firmware/05-c.json", "{}")

    def paths(**kwargs):
        return [path for path, _ in read.search_descriptors(str(tmp_path), **kwargs)]

    assert paths(privileged=True, xdg_config_home=None) == [
        "/etc/qemu/firmware/10-b.json", "/usr/share/qemu/firmware/50-a.json"]
    assert paths(privileged=False, xdg_config_home=None, home="/home/u") == [
        "/etc/qemu/firmware/10-b.json", "/home/u/.config/qemu/firmware/50-a.json"]
    assert paths(privileged=False, xdg_config_home="/xdg", home="/home/u") == [
        "/xdg/qemu/firmware/05-c.json", "/etc/qemu/firmware/10-b.json", "/usr/share/qemu/firmware/50-a.json"]
    assert paths(privileged=True, xdg_config_home=None) == paths(privileged=True, xdg_config_home="/xdg")


def test_search_of_an_empty_root_finds_nothing(tmp_path):
    assert read.search_descriptors(str(tmp_path), privileged=True, xdg_config_home=None) == []


def test_a_dangling_symlink_is_one_error_naming_it(tmp_path):
    os.makedirs(str(tmp_path / "etc/qemu/firmware"))
    os.symlink("/nonexistent/x.json", str(tmp_path / "etc/qemu/firmware/50-x.json"))
    with pytest.raises(CapsfastError, match="^cannot access firmware descriptor /etc/qemu/firmware/50-x.json: "):
        read.search_descriptors(str(tmp_path), privileged=True, xdg_config_home=None)


def test_an_oversized_descriptor_is_refused(tmp_path):
    write(tmp_path, "/usr/share/qemu/firmware/50-big.json", " " * (firmware.MAX_BYTES + 1))
    with pytest.raises(CapsfastError, match="50-big.json is larger than"):
        read.search_descriptors(str(tmp_path), privileged=True, xdg_config_home=None)


GOOD = {"interface-types": ["uefi"],
        "mapping": {"device": "flash", "executable": {"filename": "/fw/CODE.fd", "format": "raw"},
                    "nvram-template": {"filename": "/fw/VARS.fd", "format": "raw"}},
        "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
        "features": ["requires-smm", "a-feature-from-the-future"]}


def spoiled(path, value):
    """GOOD with the value at ``path`` (keys and indexes) replaced, or
    removed where ``value`` is REMOVE."""
    doc = json.loads(json.dumps(GOOD))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is REMOVE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(doc).encode()


REMOVE = object()
MALFORMED = [
    b"{nope",
    b"\xff\xfe{}",
    b"[1]",
    b"[" * 100000 + b"]" * 100000,
    spoiled(["features"], [float("nan")]),
    json.dumps(GOOD).encode()[:-1] + b', "features": []}',
    b"\0" + json.dumps(GOOD).encode(),
    spoiled(["interface-types"], REMOVE),
    spoiled(["interface-types", 0], "efi"),
    spoiled(["interface-types", 0], 7),
    spoiled(["mapping"], REMOVE),
    spoiled(["mapping", "device"], "tape"),
    spoiled(["mapping", "device"], REMOVE),
    spoiled(["mapping", "mode"], "weird"),
    spoiled(["mapping", "mode"], 1),
    spoiled(["mapping", "executable"], REMOVE),
    spoiled(["mapping", "executable", "format"], REMOVE),
    spoiled(["mapping", "nvram-template"], REMOVE),
    spoiled(["targets"], {"architecture": "x86_64"}),
    spoiled(["targets", 0, "architecture"], "z80"),
    spoiled(["targets", 0, "architecture"], REMOVE),
    spoiled(["targets", 0, "machines"], REMOVE),
    spoiled(["targets", 0, "machines", 0], None),
    spoiled(["features"], REMOVE),
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_descriptor_is_one_error_line_naming_it(data):
    path = "/etc/qemu/firmware/50-bad\n.json"
    with pytest.raises(CapsfastError) as caught:
        parse.descriptors([("/usr/share/qemu/firmware/40-fine.json", json.dumps(GOOD).encode()), (path, data)])
    message = str(caught.value)
    assert message.startswith("firmware descriptor /etc/qemu/firmware/50-bad\\n.json: ")
    assert "\n" not in message


def test_the_good_descriptor_loads_as_libvirt_reads_it():
    (descriptor,) = parse.descriptors([("/p.json", json.dumps(GOOD).encode())])
    assert descriptor.loader() == ("/fw/CODE.fd", "/fw/VARS.fd")
    assert descriptor.mode == "split"  # the historical default
    assert descriptor.features == ("requires-smm",)  # unknown ones dropped
    # libvirt stops reading at a NUL byte
    assert parse.descriptor("/p.json", json.dumps(GOOD).encode() + b"\0junk") == descriptor
    combined = json.loads(json.dumps(GOOD))
    combined["mapping"] = {"device": "memory", "filename": "/fw/bios.bin"}
    assert parse.descriptor("/q.json", json.dumps(combined).encode()).loader() == ("/fw/bios.bin", None)
    combined["mapping"] = {"device": "kernel"}  # libvirt keeps it, with no image
    assert parse.descriptor("/q.json", json.dumps(combined).encode()).loader() is None

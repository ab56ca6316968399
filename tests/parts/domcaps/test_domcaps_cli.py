"""``capsfast domcapabilities`` on hostile input: each one line
``capsfast: ...`` on stderr and exit status 2, never a traceback or a
document.  A fake root (``--root``) runs nothing: it answers from a QMP
transcript it holds (``qemu/<emulator basename>.replies``, here one of
libvirt 9.0's own), or says it has none."""
import os
import shutil
import subprocess
import sys

import pytest

from capsfast.parts import domcaps
from capsfast.parts.domcaps import firmware, parse, read

VERSION = "7.2.0"  # a QEMU of libvirt's corpus


def run(*args, env=None):
    done = subprocess.run([sys.executable, "-m", "capsfast", "domcapabilities"] + list(args),
                          capture_output=True, text=True, timeout=120, env=env)
    return done.returncode, done.stdout, done.stderr


def one_line(status, stdout, stderr):
    assert status == 2, (status, stdout, stderr)
    assert stdout == ""
    assert stderr.startswith("capsfast: ") and stderr.count("\n") == 1, stderr
    return stderr


@pytest.fixture
def root(tmp_path, libvirt_src):
    """A host tree: an executable qemu-system-x86_64 (empty: never run),
    its transcript, libvirt's CPU map and Debian-like descriptors."""
    tree = tmp_path / "root"
    emulator = tree / "usr" / "bin" / "qemu-system-x86_64"
    emulator.parent.mkdir(parents=True)
    emulator.write_bytes(b"")
    emulator.chmod(0o755)
    (tree / "qemu").mkdir()
    shutil.copyfile(os.path.join(libvirt_src, "tests", "qemucapabilitiesdata", "caps_%s.x86_64.replies" % VERSION),
                    tree / "qemu" / "qemu-system-x86_64.replies")
    shutil.copytree(os.path.join(libvirt_src, "src", "cpu_map"), tree / "usr" / "share" / "libvirt" / "cpu_map")
    (tree / "usr" / "share" / "qemu" / "firmware").mkdir(parents=True)
    return tree


def args_for(root, *more):
    return ("--root", str(root)) + more


def env_path():
    return dict(os.environ, PATH="/usr/bin:/bin")


def test_root_answers_from_its_transcript(root):
    status, out, err = run(*args_for(root, "--virttype", "qemu", "--machine", "q35"), env=env_path())
    assert status == 0, err
    assert "<path>/usr/bin/qemu-system-x86_64</path>" in out
    assert "<domain>qemu</domain>" in out and "<machine>pc-q35-7.2</machine>" in out


def test_root_without_transcript_is_one_line(root):
    (root / "qemu" / "qemu-system-x86_64.replies").unlink()
    err = one_line(*run(*args_for(root, "--virttype", "qemu"), env=env_path()))
    assert "holds no QMP transcript" in err


def test_malformed_descriptor(root):
    (root / "usr" / "share" / "qemu" / "firmware" / "50-broken.json").write_text('{"interface-types": [')
    err = one_line(*run(*args_for(root, "--virttype", "qemu"), env=env_path()))
    assert "50-broken.json" in err


def test_kvm_where_kvm_cannot_be_used(root):
    # the root has no /dev/kvm
    err = one_line(*run(*args_for(root, "--virttype", "kvm"), env=env_path()))
    assert "KVM" in err


def test_kvm_for_a_foreign_arch(root):
    one_line(*run(*args_for(root, "--virttype", "kvm", "--arch", "aarch64"), env=env_path()))


@pytest.mark.parametrize("arch", ["aarch64", "ppc64le", "s390x", "riscv64"])
def test_other_arches_are_not_yet(root, arch):
    err = one_line(*run(*args_for(root, "--arch", arch), env=env_path()))
    assert "not yet" in err


def test_unknown_machine(root):
    err = one_line(*run(*args_for(root, "--virttype", "qemu", "--machine", "no-such-machine"), env=env_path()))
    assert "no-such-machine" in err


def test_emulator_not_executable(root):
    target = root / "usr" / "bin" / "qemu-system-x86_64"
    target.chmod(0o644)
    err = one_line(*run(*args_for(root, "--virttype", "qemu", "--emulator", "/usr/bin/qemu-system-x86_64"),
                        env=env_path()))
    assert "not an executable" in err


def test_emulator_missing(root):
    one_line(*run(*args_for(root, "--emulator", "/usr/bin/qemu-system-nothing"), env=env_path()))


def test_no_emulator_in_the_path(root):
    (root / "usr" / "bin" / "qemu-system-x86_64").unlink()
    err = one_line(*run(*args_for(root, "--virttype", "qemu"), env=env_path()))
    assert "unable to find any emulator" in err


def test_unknown_virttype(root):
    status, out, err = run(*args_for(root, "--virttype", "xen"), env=env_path())
    one_line(status, out, err)


def test_json_is_the_same_facts(root):
    import json

    status, out, err = run(*args_for(root, "--virttype", "qemu", "--json"), env=env_path())
    assert status == 0, err
    doc = json.loads(out)
    assert doc["domain"] == "qemu" and doc["arch"] == "x86_64" and doc["cpu"]["custom"]


def test_capture_names_the_paths_the_reader_reads():
    """The part's declaration spells its paths out (no imports when a
    recording plans); they are the reader's."""
    files = {entry[1] for entry in domcaps.CAPTURE["files"]}
    assert {read.VFIO_DEVICE, read.IOMMU_GROUPS} <= files
    assert {image for image, _nvram in firmware.BUILTIN_LOADERS} <= files
    assert [g[1] for g in domcaps.CAPTURE["globs"]] == [d + "/*" for d in (firmware.DATA_DIR, firmware.CONF_DIR)]


def test_tpm_versions_from_swtpm_setup():
    printed = b'{ "type": "swtpm_setup", "features": [ "tpm-1.2", "tpm-2.0", "cmdarg-keyfile-fd" ] }'
    assert parse.tpm_versions(printed) == ("1.2", "2.0")
    assert parse.tpm_versions(b'{"features": ["tpm-2.0"]}') == ("2.0",)
    assert parse.tpm_versions(b"") == ()
    assert parse.tpm_versions(b"[1]") == ()


def test_one_escape_for_the_whole_document_and_it_is_well_formed():
    """libvirt writes 0x1A-0x1F raw (no parser reads that); every renderer
    of the document writes U+FFFD for them, and drops 0x01-0x19 as libvirt
    does."""
    import xml.etree.ElementTree as ET

    from capsfast.cpu_map.x86_decode import GuestCpu
    from capsfast.render.domcaps_cpu import guest_cpu_lines
    from capsfast.render.domcaps_libvirt import text
    from capsfast.render.domcaps_os import os_lines

    odd = "/fw/a\x1bb\x01c&'"
    loader = os_lines(firmware.OsCaps(("efi",), (odd,), loader_secure=("no",)))
    cpu = guest_cpu_lines(GuestCpu("m\x1f", "Intel", (("require", "f\x1e"),)))
    for lines in (loader, cpu):
        ET.fromstring("\n".join(lines))  # well-formed
    assert "<value>/fw/a\ufffdbc&amp;&apos;</value>" in "\n".join(loader)
    assert "m\ufffd" in "\n".join(cpu) and "f\ufffd" in "\n".join(cpu)
    assert text(odd) == "/fw/a\ufffdbc&amp;&apos;"

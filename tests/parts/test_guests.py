"""Guests per architecture: each rule on plain data, the
emulator discovery on temporary roots, and the optional machine types."""
import os
import sys

import pytest

import capsfast
from capsfast.parts.guests import discover as emulators
from capsfast.parts.guests import decide as guests
from capsfast.parts.guests import machines
from capsfast.parts.guests.parse import parse_help
from capsfast.sources.base import Source
from capsfast.model import Machine
from capsfast.model import Xen


def by_arch(result, os_type="hvm"):
    return {g.arch: g for g in result if g.os_type == os_type}


def qemu(host, targets, qemu_kvm=None, kvm=False, kqemu=False):
    binaries = {t: "/usr/bin/qemu-system-" + t for t in targets}
    return by_arch(guests.qemu_guests(host, binaries, qemu_kvm, kvm, kqemu))


# --- QEMU rules -------------------------------------------------------------

def test_i686_has_pae_and_nonpae_and_x86_features():
    g = qemu("x86_64", ["i386", "x86_64"], kvm=True)
    assert g["i686"].features == ("pae", "nonpae", "acpi", "apic", "cpuselection", "deviceboot", "disksnapshot")
    assert g["x86_64"].features == ("acpi", "apic", "cpuselection", "deviceboot", "disksnapshot")
    assert g["i686"].emulator == "/usr/bin/qemu-system-i386"
    assert (g["i686"].wordsize, g["x86_64"].wordsize) == (32, 64)
    assert g["i686"].domains == g["x86_64"].domains == ("qemu", "kvm")


def test_aarch64_has_acpi_but_no_apic():
    g = qemu("aarch64", ["aarch64"])
    assert g["aarch64"].features == ("acpi", "cpuselection", "deviceboot", "disksnapshot")


def test_armv7l_on_aarch64_uses_qemu_system_aarch64_and_kvm():
    g = qemu("aarch64", ["aarch64", "arm"], kvm=True)
    assert g["armv7l"].emulator == "/usr/bin/qemu-system-aarch64"
    assert g["armv7l"].domains == ("qemu", "kvm")
    # armv6l is not native: it keeps qemu-system-arm and TCG.
    assert g["armv6l"].emulator == "/usr/bin/qemu-system-arm"
    assert g["armv6l"].domains == ("qemu",)


def test_armv7l_on_aarch64_without_the_aarch64_binary_gets_no_kvm():
    g = qemu("aarch64", ["arm"], kvm=True)
    assert g["armv7l"].emulator == "/usr/bin/qemu-system-arm"
    assert g["armv7l"].domains == ("qemu",)
    assert "aarch64" not in g


def test_qemu_system_arm_serves_armv6l_and_armv7l_elsewhere():
    g = qemu("x86_64", ["arm"], kvm=True)
    assert g["armv6l"].emulator == g["armv7l"].emulator == "/usr/bin/qemu-system-arm"
    assert g["armv7l"].domains == ("qemu",)


def test_ppc64le_is_served_by_qemu_system_ppc64():
    g = qemu("x86_64", ["ppc64"], kvm=True)
    assert g["ppc64le"].emulator == g["ppc64"].emulator == "/usr/bin/qemu-system-ppc64"
    assert g["ppc64le"].domains == ("qemu",)
    assert g["ppc64le"].wordsize == 64


def test_ppc64le_host_runs_both_ppc64_flavours_with_kvm():
    g = qemu("ppc64le", ["ppc64"], kvm=True)
    assert g["ppc64le"].domains == g["ppc64"].domains == ("qemu", "kvm")


def test_host_binary_serves_native_guests():
    g = qemu("x86_64", ["x86_64"], kvm=True)
    assert g["i686"].emulator == "/usr/bin/qemu-system-x86_64"
    assert g["i686"].domains == ("qemu", "kvm")
    # Not the other way round: an i686 host does not run x86_64 natively.
    g = qemu("i686", ["i386"], kvm=True)
    assert set(g) == {"i686"}


def test_qemu_kvm_serves_only_native_arches():
    g = qemu("x86_64", [], qemu_kvm="/usr/libexec/qemu-kvm", kvm=True)
    assert set(g) == {"i686", "x86_64"}
    assert g["x86_64"].emulator == "/usr/libexec/qemu-kvm"
    assert g["x86_64"].domains == ("qemu", "kvm")
    # A qemu-system-* binary wins over qemu-kvm.
    g = qemu("x86_64", ["x86_64"], qemu_kvm="/usr/libexec/qemu-kvm")
    assert g["x86_64"].emulator == "/usr/bin/qemu-system-x86_64"


def test_kvm_only_for_native_arches_and_only_when_usable():
    g = qemu("x86_64", ["x86_64", "aarch64", "s390x"], kvm=True)
    assert g["aarch64"].domains == g["s390x"].domains == ("qemu",)
    g = qemu("x86_64", ["x86_64"], kvm=False)
    assert g["x86_64"].domains == ("qemu",)


def test_kqemu_only_for_the_host_pc_arch():
    g = qemu("x86_64", ["i386", "x86_64"], kqemu=True)
    assert g["x86_64"].domains == ("qemu", "kqemu")
    assert g["i686"].domains == ("qemu",)
    g = qemu("i686", ["i386"], kqemu=True, kvm=True)
    assert g["i686"].domains == ("qemu", "kqemu", "kvm")
    g = qemu("aarch64", ["aarch64"], kqemu=True)
    assert g["aarch64"].domains == ("qemu",)


def test_unknown_targets_are_ignored_and_order_is_libvirts():
    result = guests.qemu_guests(
        "x86_64",
        {t: "/usr/bin/qemu-system-" + t for t in ("x86_64", "x86_64-microvm", "s390x", "i386", "aarch64")},
        None, False, False,
    )
    assert [g.arch for g in result] == ["aarch64", "i686", "s390x", "x86_64"]


# --- Xen rules --------------------------------------------------------------

TOKENS = ("xen-3.0-x86_64", "xen-3.0-x86_32p", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64")


def test_xen_tokens_merge_per_os_type_and_arch_with_loader_for_hvm():
    result = guests.xen_guests("x86_64", Xen(True, "dom0", "xen", TOKENS))
    assert [(g.os_type, g.arch) for g in result] == [
        ("xen", "x86_64"), ("xen", "i686"), ("hvm", "i686"), ("hvm", "x86_64")]
    pv, hvm = by_arch(result, "xen"), by_arch(result, "hvm")
    assert pv["i686"].features == ("pae",)
    assert hvm["i686"].features == ("pae", "nonpae", "acpi", "apic")
    assert hvm["x86_64"].features == ("acpi", "apic")
    assert all(g.domains == ("xen",) for g in result)
    assert hvm["x86_64"].loader == "/usr/lib/xen/boot/hvmloader"
    assert pv["x86_64"].loader is None
    assert hvm["i686"].machines == (Machine("xenfv", None, False),)
    assert pv["x86_64"].machines == (Machine("xenpv", None, False),)
    assert pv["x86_64"].emulator == "/usr/lib64/xen/bin/qemu-dm"


def test_xen_dom0_without_hvm_tokens_has_no_hvm_guest():
    result = guests.xen_guests("x86_64", Xen(True, "dom0", "xen", ("xen-3.0-x86_64",)))
    assert [(g.os_type, g.arch) for g in result] == [("xen", "x86_64")]


def test_xen_guests_only_in_dom0_and_odd_tokens_ignored():
    assert guests.xen_guests("x86_64", Xen(True, "domU", "xen", TOKENS)) == ()
    assert guests.xen_guests("x86_64", Xen(False, None, None, ())) == ()
    odd = ("xen-3.0-sparc", "hvm-x.0-x86_64", "kvm-3.0-x86_64", "garbage", "hvm-3.0-ia64be", "xen-3.0-powerpc64")
    result = guests.xen_guests("i686", Xen(True, "dom0", "xen", odd))
    assert [(g.os_type, g.arch, g.features) for g in result] == [
        ("hvm", "ia64", ("ia64_be", "acpi", "apic")), ("xen", "ppc64", ())]
    assert result[0].emulator == "/usr/lib/xen/bin/qemu-dm"


def test_feature_toggles_follow_the_driver():
    q = qemu("x86_64", ["x86_64"])["x86_64"]
    x = by_arch(guests.xen_guests("x86_64", Xen(True, "dom0", "xen", TOKENS)))["x86_64"]
    assert guests.feature_toggle(q, "apic") == ("on", "no")
    assert guests.feature_toggle(x, "apic") == ("on", "yes")
    assert guests.feature_toggle(q, "acpi") == ("on", "yes")
    assert guests.feature_toggle(q, "cpuselection") is None


# --- scenarios --------------------------------------------------------------

def test_scenario_guests(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    for g in host.guests:
        assert g.wordsize == guests.WORDSIZE[g.arch]
        assert g.domains and (g.domains[0] in ("qemu", "xen"))
        # Paths as on the probed host, never the fake root's.
        assert g.emulator.startswith("/usr/") and str(tmp_path) not in g.emulator
        assert "tests/hosts" not in g.emulator
    if host.xen.role == "dom0":
        xen = [g for g in host.guests if "xen" in g.domains]
        assert any(g.os_type == "xen" for g in xen)
        has_hvm = any(t.startswith("hvm-") for t in host.xen.capabilities)
        assert any(g.os_type == "hvm" for g in xen) == has_hvm
    else:
        assert not any("xen" in g.domains for g in host.guests)


def test_rhel_scenario_finds_qemu_kvm(tmp_path):
    from scenarios import all_scenarios

    scenario = {s.name: s for s in all_scenarios()}.get("rhel-qemu-kvm")
    if scenario is None:
        pytest.skip("scenario rhel-qemu-kvm not present")
    host = scenario.probe(tmp_path)
    assert {(g.arch, g.emulator) for g in host.guests} == {
        ("i686", "/usr/libexec/qemu-kvm"), ("x86_64", "/usr/libexec/qemu-kvm")}


# --- emulator discovery -----------------------------------------------------

def make_emulator(path, body="exit 0", mode=0o755):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n%s\n" % body)
    path.chmod(mode)
    return path


def discover(root):
    """Discovery in the host under ``root``, asked of a root's source."""
    return emulators.discover(Source(root, "x86_64"))


@pytest.fixture
def fake_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin:relative/bin")
    emulators.forget()
    yield
    emulators.forget()


def test_discovery_first_path_dir_wins_and_needs_an_executable(tmp_path, fake_path):
    make_emulator(tmp_path / "usr/local/bin/qemu-system-x86_64")
    make_emulator(tmp_path / "usr/bin/qemu-system-x86_64")
    make_emulator(tmp_path / "usr/local/bin/qemu-system-aarch64", mode=0o644)
    make_emulator(tmp_path / "usr/bin/qemu-system-aarch64")
    (tmp_path / "usr/bin/qemu-system-s390x").mkdir()
    make_emulator(tmp_path / "relative/bin/qemu-system-ppc64")
    found = discover(str(tmp_path))
    assert found.binaries == {
        "x86_64": "/usr/local/bin/qemu-system-x86_64",
        "aarch64": "/usr/bin/qemu-system-aarch64",
    }
    assert found.qemu_kvm is None


def test_discovery_symlinks_are_read_inside_the_root(tmp_path, fake_path):
    make_emulator(tmp_path / "opt/qemu/bin/qemu-system-x86_64")
    (tmp_path / "usr/bin").mkdir(parents=True)
    os.symlink("/opt/qemu/bin/qemu-system-x86_64", tmp_path / "usr/bin/qemu-system-x86_64")
    os.symlink("/nonexistent/qemu", tmp_path / "usr/bin/qemu-system-arm")
    os.symlink("usr/bin", tmp_path / "bin")
    found = discover(str(tmp_path))
    assert found.binaries == {"x86_64": "/usr/bin/qemu-system-x86_64"}
    # /bin is the same directory as /usr/bin: watched once.
    watched = [w[0] for w in emulators._cache[(str(tmp_path), os.environ["PATH"])].watch]
    assert watched.count("/usr/bin") == 1
    assert "/bin" not in watched


def test_discovery_never_looks_outside_the_root(tmp_path, fake_path, monkeypatch):
    """A relative link climbing past the root stops at the root, as in a
    chroot: this machine's own executable is not the root's emulator,
    and no file outside the root is stat'ed or listed."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    real = os.path.realpath(sys.executable)  # an executable this machine surely has
    os.symlink("../" * 64 + real.lstrip("/"), root / "usr/bin/qemu-system-x86_64")
    os.symlink(real, root / "usr/bin/qemu-system-aarch64")  # absolute: read inside the root too
    looked_at = []
    with monkeypatch.context() as patch:
        for name in ("stat", "lstat", "listdir"):
            def recorded(path, *args, real_call=getattr(os, name), **kwargs):
                looked_at.append(os.path.normpath(os.fsdecode(path)) if path else "")
                return real_call(path, *args, **kwargs)

            patch.setattr(os, name, recorded)
        found = discover(str(root))
    assert found.binaries == {} and found.qemu_kvm is None
    assert looked_at and [p for p in looked_at if p and not (p + "/").startswith(str(root) + "/")] == []


class TableHost(Source):
    """A host known only from a table of (path -> mode), nothing of it on
    disk: discovery must ask the source's ``stat`` and ``listdir``."""

    def __init__(self, table):
        super().__init__("/nonexistent-host-for-discovery", "x86_64", path_env="/usr/local/bin:/usr/bin")
        self.table = table

    def stat(self, path):
        mode = self.table.get(path)
        if mode is None:
            return None
        ino = sorted(self.table).index(path) + 1
        return os.stat_result((mode, ino, 1, 1, 0, 0, 0, 0, 0, 0), {"st_mtime_ns": 1, "st_ctime_ns": 1})

    def listdir(self, path):
        if self.stat(path) is None:
            return None
        prefix = path.rstrip("/") + "/"
        return [p[len(prefix):] for p in self.table if p.startswith(prefix) and "/" not in p[len(prefix):]]


def test_discovery_asks_the_source():
    emulators.forget()
    host = TableHost({"/usr/bin": 0o40755, "/usr/bin/qemu-system-x86_64": 0o100755,
                      "/usr/bin/qemu-system-arm": 0o100644, "/usr/libexec": 0o40755,
                      "/usr/libexec/qemu-kvm": 0o100755})
    found = emulators.discover(host)
    assert found == emulators.Emulators({"x86_64": "/usr/bin/qemu-system-x86_64"}, "/usr/libexec/qemu-kvm")
    assert emulators.discover(host) is found  # its stamps unchanged: no second scan
    host.table["/usr/local/bin"] = 0o40755
    host.table["/usr/local/bin/qemu-system-arm"] = 0o100755
    assert emulators.discover(host).binaries == {"x86_64": "/usr/bin/qemu-system-x86_64",
                                                 "arm": "/usr/local/bin/qemu-system-arm"}
    emulators.forget()


def test_discovery_sees_installs_and_removals(tmp_path, fake_path):
    root = str(tmp_path)
    make_emulator(tmp_path / "usr/bin/qemu-system-x86_64")
    first = discover(root)
    assert discover(root) == first
    make_emulator(tmp_path / "usr/bin/qemu-system-i386")
    assert "i386" in discover(root).binaries
    (tmp_path / "usr/bin/qemu-system-x86_64").unlink()
    assert discover(root).binaries == {"i386": "/usr/bin/qemu-system-i386"}
    make_emulator(tmp_path / "usr/libexec/qemu-kvm")
    assert discover(root).qemu_kvm == "/usr/libexec/qemu-kvm"
    # A directory that appears later is found too.
    make_emulator(tmp_path / "usr/local/bin/qemu-system-arm")
    assert discover(root).binaries["arm"] == "/usr/local/bin/qemu-system-arm"


def test_unchanged_directories_give_the_same_answer_object(tmp_path, fake_path):
    root = str(tmp_path)
    make_emulator(tmp_path / "usr/bin/qemu-system-x86_64")
    old = os.stat(tmp_path / "usr/bin").st_mtime_ns - 10**9
    os.utime(tmp_path / "usr/bin", ns=(old, old))
    first = discover(root)
    assert discover(root) is first


def test_unset_path_uses_libvirts_default(tmp_path, monkeypatch):
    monkeypatch.delenv("PATH")
    emulators.forget()
    make_emulator(tmp_path / "bin/qemu-system-x86_64")
    assert discover(str(tmp_path)).binaries == {"x86_64": "/bin/qemu-system-x86_64"}
    emulators.forget()


def test_probe_runs_no_emulator(tmp_path, fake_path):
    marker = tmp_path / "ran"
    make_emulator(tmp_path / "root/usr/bin/qemu-system-x86_64", "touch %s" % marker)
    (tmp_path / "root/proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "root/proc/sys/kernel/arch").write_text("x86_64\n")
    host = capsfast.probe(root=str(tmp_path / "root"))
    assert [g.emulator for g in host.guests] == ["/usr/bin/qemu-system-x86_64"] * 2
    for fmt in capsfast.FORMATS:
        capsfast.capabilities(host, format=fmt)
    assert not marker.exists()


def test_live_probe_lists_this_hosts_emulators(fresh_process_state):
    host = capsfast.probe()
    found = discover("/")
    expected = guests.for_host(host.arch, found.binaries, found.qemu_kvm, host.kvm, host.kqemu, host.xen)
    assert host.guests == expected
    assert capsfast.probe(refresh=True).guests == expected


# --- machine types ----------------------------------------------------------

HELP = """Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
pc-i440fx-1.4        Standard PC (i440FX + PIIX, 1996) (deprecated)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
none                 empty machine
"""


def test_parse_machine_help():
    assert parse_help(HELP) == (
        Machine("microvm", None, False),
        Machine("pc", "pc-i440fx-7.2", False),
        Machine("pc-i440fx-7.2", None, False),
        Machine("pc-i440fx-1.4", None, True),
        Machine("q35", "pc-q35-7.2", False),
        Machine("pc-q35-7.2", None, False),
    )


def counting_emulator(path, counter):
    help_file = counter.parent / "help.txt"
    help_file.write_text(HELP)
    return make_emulator(path, 'echo run >> %s\n[ "$1 $2" = "-machine help" ] || exit 3\ncat %s' % (counter, help_file))


def test_machines_run_once_then_come_from_the_disk_cache(tmp_path, fake_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    counter = tmp_path / "runs"
    root = tmp_path / "root"
    binary = counting_emulator(root / "usr/bin/qemu-system-x86_64", counter)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/arch").write_text("x86_64\n")

    plain = capsfast.probe(root=str(root))
    assert all(g.machines is None for g in plain.guests)
    assert not counter.exists()

    host = capsfast.probe(root=str(root), machines=True)
    # i686 and x86_64 share the binary: one run.
    assert counter.read_text().count("run") == 1
    assert [g.machines for g in host.guests] == [parse_help(HELP)] * 2
    assert (tmp_path / ("cache/capsfast/machines-%d" % machines.CACHE_VERSION)).exists()

    again = capsfast.probe(root=str(root), machines=True)
    assert again.guests == host.guests
    assert counter.read_text().count("run") == 1

    # A replaced binary (new size, mtime, inode) is asked again.
    binary.unlink()
    counting_emulator(binary, counter)
    with open(binary, "a") as f:
        f.write("# upgraded\n")
    capsfast.probe(root=str(root), machines=True)
    assert counter.read_text().count("run") == 2


def test_machines_of_a_failing_emulator_are_unknown(tmp_path, fake_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "root"
    make_emulator(root / "usr/bin/qemu-system-aarch64", "exit 1")
    host = capsfast.probe(root=str(root), arch="aarch64", machines=True)
    assert host.guests and all(g.machines is None for g in host.guests)


def test_cli_machines_flag(tmp_path, fake_path, monkeypatch, capsys):
    from capsfast.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "root"
    counting_emulator(root / "usr/bin/qemu-system-x86_64", tmp_path / "runs")
    assert main(["capabilities", "--root", str(root), "--arch", "x86_64", "--machines"]) == 0
    out = capsys.readouterr().out
    assert '<machine canonical="pc-i440fx-7.2">pc</machine>' in out
    assert '<machine deprecated="yes">pc-i440fx-1.4</machine>' in out


@pytest.mark.skipif(not os.access("/usr/bin/qemu-system-x86_64", os.X_OK), reason="qemu-system-x86_64 not installed")
def test_real_qemu_machine_help(tmp_path):
    found = machines.machines_for(["/usr/bin/qemu-system-x86_64"], cache_file=str(tmp_path / "m.json"))
    names = {m.name for m in found["/usr/bin/qemu-system-x86_64"]}
    assert {"pc", "q35"} <= names and "none" not in names

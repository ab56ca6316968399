"""``capsfast domcapabilities`` on this machine against the real libvirt
9.0 here, byte for byte: the system daemon's ``virsh domcapabilities``
for kvm and qemu with q35, pc and the default machine; an unprivileged
user's session daemon, with a firmware descriptor of that user's
masking one of Debian's ovmf; and virtinst's ``DomainCapabilities``
(system python3) reading both documents to the same answers.

Starts libvirtd as tests/test_libvirt_live.py does (same needs: root,
libvirt-daemon-system, libvirt-clients, qemu-system-x86, ovmf; skips
without them, fails in CI) and stops it by its pid."""
import json
import os
import shutil
import subprocess
import sys

import pytest

VIRTTYPES = ("kvm", "qemu")
MACHINES = (None, "q35", "pc")
NOBODY = 65534


def virsh_session(env, *args):
    return subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
                           "env", "-i"] + ["%s=%s" % kv for kv in env.items()]
                          + ["virsh", "-c", "qemu:///session"] + list(args),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def libvirt_answers(tmp_path_factory):
    """virsh domcapabilities of the system daemon, per (virttype, machine)."""
    from test_libvirt_live import need_libvirtd, running_daemon, start_daemon, stop_daemon, virsh

    need_libvirtd()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("KVM is not usable here: only the qemu virt type could be compared")
    ours_pid = None
    # a daemon already serving qemu:///system (whoever started it) is used as it is
    if running_daemon() is None and virsh("uri", timeout=30).returncode != 0:
        ours_pid = start_daemon(str(tmp_path_factory.mktemp("libvirtd")))
    try:
        answers = {}
        for virttype in VIRTTYPES:
            for machine in MACHINES:
                args = ["domcapabilities", "--virttype", virttype] + (["--machine", machine] if machine else [])
                done = virsh(*args)
                assert done.returncode == 0, done.stderr
                answers[virttype, machine] = done.stdout
            # an i686 guest: qemu-system-i386, its own conversation
            done = virsh("domcapabilities", "--virttype", virttype, "--arch", "i686")
            assert done.returncode == 0, done.stderr
            answers[virttype, "i686"] = done.stdout
        return answers
    finally:
        if ours_pid is not None:
            stop_daemon(ours_pid)


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def ours(cache_home, *args):
    env = dict(os.environ, XDG_CACHE_HOME=cache_home)
    done = subprocess.run([sys.executable, "-m", "capsfast", "domcapabilities"] + list(args),
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("machine", MACHINES, ids=["default", "q35", "pc"])
@pytest.mark.parametrize("virttype", VIRTTYPES)
def test_equals_virsh_domcapabilities(libvirt_answers, cache_home, virttype, machine):
    text = ours(cache_home, "--virttype", virttype, *(["--machine", machine] if machine else []))
    # virsh prints two newlines after the document
    assert text + "\n\n" == libvirt_answers[virttype, machine]


@pytest.mark.parametrize("virttype", VIRTTYPES)
def test_i686_equals_virsh_domcapabilities(libvirt_answers, cache_home, virttype):
    text = ours(cache_home, "--virttype", virttype, "--arch", "i686")
    assert "<path>/usr/bin/qemu-system-i386</path>" in text
    assert text + "\n\n" == libvirt_answers[virttype, "i686"]


def test_defaults_are_virshs(libvirt_answers, cache_home):
    # kvm is usable here: the default virt type is kvm, the machine pc's canonical name
    assert ours(cache_home) + "\n\n" == libvirt_answers["kvm", None]


def test_api_equals_virsh(libvirt_answers, cache_home, monkeypatch):
    import capsfast

    monkeypatch.setenv("XDG_CACHE_HOME", cache_home)
    for (virttype, machine), expected in libvirt_answers.items():
        if machine == "i686":
            continue
        assert capsfast.domain_capabilities(virttype=virttype, machine=machine) + "\n\n" == expected
        # the kept rendering, handed out again, is still the same
        assert capsfast.domain_capabilities(virttype=virttype, machine=machine) + "\n\n" == expected


# -- an unprivileged user: libvirt's session daemon ---------------------------------

@pytest.fixture
def user_tmp():
    """A directory that user can reach (pytest's own are root's alone)."""
    import tempfile

    path = tempfile.mkdtemp(prefix="capsfast-session-")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        pidfile = os.path.join(path, "home", "run", "libvirt", "libvirtd.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None:
            from test_libvirt_live import stop_daemon

            stop_daemon(pid)  # the session daemon virsh started for that user
        shutil.rmtree(path, ignore_errors=True)


def test_unprivileged_user_equals_session_virsh(libvirt_answers, user_tmp):
    """The user's own firmware directory counts: an empty descriptor there
    masks Debian's secure-boot one, so libvirt's <os> changes with it."""
    import capsfast

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run virsh as another user")
    debian = "/usr/share/qemu/firmware"
    if not os.path.isdir(debian) or not os.listdir(debian):
        pytest.skip("no firmware descriptors in %s: apt-get install ovmf" % debian)
    from pathlib import Path

    home = Path(user_tmp) / "home"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_CACHE_HOME": str(home / "cache"), "XDG_RUNTIME_DIR": str(home / "run")}
    firmware_dir = home / "config" / "qemu" / "firmware"
    firmware_dir.mkdir(parents=True)
    (home / "cache").mkdir()
    (home / "run").mkdir(mode=0o700)
    masked = sorted(os.listdir(debian))[-1]  # Debian: the plain (not secure-boot) one, serving pc too
    (firmware_dir / masked).write_bytes(b"")
    for path in [home] + list(home.rglob("*")):
        os.chown(path, NOBODY, NOBODY)
    theirs = virsh_session(env, "domcapabilities")
    assert theirs.returncode == 0, theirs.stderr

    # Every module that user's call may import, loaded while root can read
    # them all (a copy of the package may be root's alone, as the sanitizer
    # run's is); a call here may be answered from the kept text and import
    # nothing.
    import importlib
    import pkgutil

    for package in ("capsfast.parts", "capsfast.render", "capsfast.sources", "capsfast.cpu_map"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            importlib.import_module(module.name)
    capsfast.domain_capabilities(virttype="qemu")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: that user, that environment, this process's capsfast
        status = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.environ.clear()
            os.environ.update(env)
            text = capsfast.domain_capabilities()
            os.write(write, json.dumps({"text": text}).encode())
            status = 0
        except BaseException as e:
            os.write(write, json.dumps({"error": repr(e)}).encode())
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = json.loads(f.read())
    os.waitpid(pid, 0)
    assert "error" not in answer, answer
    assert answer["text"] + "\n\n" == theirs.stdout
    # the mask mattered: the system daemon, reading no user's files, differs
    assert answer["text"] + "\n\n" != libvirt_answers["qemu", None]


# -- virtinst reads our document as it reads virsh's ---------------------------------

VIRTINST = r"""
import json, sys
sys.path.insert(0, "/usr/share/virt-manager")  # where Debian's virtinst lives
from virtinst.domcapabilities import DomainCapabilities

QUESTIONS = ("supports_uefi_loader", "supports_firmware_efi", "get_cpu_models",
             "supports_sev_launch_security", "supports_video_bochs", "supports_video_qxl", "supports_video_virtio",
             "supports_tpm_emulator", "supports_graphics_spice", "supports_filesystem_virtiofs",
             "supports_memorybacking_memfd")
answers = []
for path in sys.argv[1:]:
    with open(path) as f:
        caps = DomainCapabilities(None, parsexml=f.read())
    got = {"path": caps.path, "machine": caps.machine, "arch": caps.arch, "domain": caps.domain,
           "loaders": [v.value for v in caps.os.loader.values]}
    for question in QUESTIONS:
        got[question] = getattr(caps, question)()
    answers.append(got)
print(json.dumps(answers))
"""


def test_virtinst_reads_ours_as_virshs(libvirt_answers, cache_home, tmp_path):
    python3 = shutil.which("python3", path="/usr/bin")
    if python3 is None or not os.path.isfile("/usr/share/virt-manager/virtinst/domcapabilities.py"):
        pytest.skip("virtinst (Debian's virtinst, for the system python3) is not installed")
    paths = []
    for (virttype, machine), expected in sorted(libvirt_answers.items(), key=str):
        if machine == "i686":
            continue
        theirs_path = tmp_path / ("virsh-%s-%s.xml" % (virttype, machine))
        ours_path = tmp_path / ("capsfast-%s-%s.xml" % (virttype, machine))
        theirs_path.write_text(expected)
        ours_path.write_text(ours(cache_home, "--virttype", virttype, *(["--machine", machine] if machine else [])))
        paths += [str(theirs_path), str(ours_path)]
    done = subprocess.run([python3, "-c", VIRTINST] + paths, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    for theirs, mine in zip(answers[::2], answers[1::2]):
        assert mine == theirs
    # the answers say something: models listed, EFI found for q35
    assert all(a["get_cpu_models"] for a in answers)
    assert any(a["supports_firmware_efi"] for a in answers)

"""capsfast against the real libvirt on this machine.

Starts ``libvirtd -d`` (there may be no systemd), asks ``virsh -c
qemu:///system capabilities``, and compares it with ``capsfast
capabilities``: same host arch (and CPU vendor and signature), same set of
guests (os_type, arch, wordsize, emulator), same domain types per guest, same
guest features; with ``--machines``, the same machine names.

Needs root and Debian's libvirt-daemon-system, libvirt-clients and
qemu-system-x86.  Without them the test skips on a developer's machine and
fails in CI (``CI=true``).

Debian's default qemu.conf runs QEMU as libvirt-qemu, which cannot open a
root-only /dev/kvm, and libvirt then probes QEMU again on every call (about
4 s per binary).  The daemon started here reads a qemu.conf with ``user =
"root"`` and ``group = "root"`` instead: a copy of /etc/libvirt/qemu.conf
bind-mounted over the original in a private mount namespace (``unshare
--mount``), so /etc is never edited.  Where no mount namespace can be made,
the test skips on a developer's machine, and in CI it puts the copy in
place of /etc/libvirt/qemu.conf while the daemon starts and then restores
the original.

The host ``<cpu>`` compares element for element: arch, model, vendor,
microcode, signature, the TSC counter, maxphysaddr and the feature list in
order (both decode against the installed /usr/share/libvirt/cpu_map), and
``<migration_features>`` whole.

Accepted differences (not compared, and why):
- libvirt's host part holds facts capsfast does not probe (secmodel,
  power management); the topology, cells, cache, pages, IOMMU and UUID
  are compared in tests/test_libvirt_live_host.py.
- ``<machine maxCpus=...>``: QMP reports it, ``-machine help`` does not;
  machine order: libvirt's follows QMP, capsfast's the help text.
- Attribute quotes: libvirt writes '...', lxml "..." (the same XML).
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from capsfast import libvirt_xml

URI = "qemu:///system"
QEMU_CONF = "/etc/libvirt/qemu.conf"


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail("libvirt comparison cannot run in CI: " + reason)
    pytest.skip(reason)


def tool_env():
    """The environment for libvirt's own programs: without the sanitizer
    run's preload, which is for capsfast's module, not for libvirt."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def virsh(*args, timeout=300):
    return subprocess.run(["virsh", "-c", URI] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=tool_env())


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a daemon reparented to a non-reaping init stays a zombie


def running_daemon():
    """The pid of a libvirtd that was already running, or None."""
    for pidfile in ("/run/libvirtd.pid", "/var/run/libvirtd.pid"):
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if alive(pid):
            return pid
    return None


def start_daemon(tmp):
    """Start libvirtd -d with root as QEMU's user; its pid."""
    conf = os.path.join(tmp, "qemu.conf")
    with open(QEMU_CONF) as f:
        base = f.read()
    with open(conf, "w") as f:
        f.write(base + '\n# capsfast test: no re-probing of QEMU\nuser = "root"\ngroup = "root"\n')
    pidfile = os.path.join(tmp, "libvirtd.pid")
    # --timeout: the daemon exits by itself when idle, should this test die.
    daemon = ["libvirtd", "-d", "--pid-file", pidfile, "--timeout", "600"]
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    if shutil.which("unshare") is None:
        done = subprocess.CompletedProcess([], 1, "", "unshare not installed")
    else:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                               conf, QEMU_CONF] + daemon, capture_output=True, text=True, timeout=60, env=tool_env())
    if done.returncode != 0:
        if os.environ.get("CI") != "true":
            pytest.skip("no private mount namespace for libvirtd's qemu.conf (%s); "
                        "in CI the test edits %s for the daemon's start instead" % (done.stderr.strip(), QEMU_CONF))
        # CI only: the same two lines in the real file, for the daemon's
        # start only (libvirtd reads it once), then the original back.
        with open(QEMU_CONF, "rb") as f:
            original = f.read()
        try:
            shutil.copyfile(conf, QEMU_CONF)
            done = subprocess.run(daemon, capture_output=True, text=True, timeout=60, env=tool_env())
            if done.returncode != 0:
                raise RuntimeError("libvirtd -d failed: %s" % (done.stderr.strip() or done.returncode))
            return wait_for_daemon(pidfile)
        finally:
            with open(QEMU_CONF, "wb") as f:
                f.write(original)
    return wait_for_daemon(pidfile)


def wait_for_daemon(pidfile):
    # The daemon writes its pid file once it serves; a loaded machine may
    # take a while, so the wait is by the clock, not by tries.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            if virsh("uri", timeout=30).returncode == 0:
                return pid
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise RuntimeError("libvirtd did not come up in 180 s")


def stop_daemon(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(150):
        if not alive(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def need_libvirtd():
    """Skip (fail in CI) where libvirtd cannot be started for qemu:///system."""
    if sys.platform != "linux":
        pytest.skip("Linux only")
    missing = [p for p in ("libvirtd", "virsh", "qemu-system-x86_64") if shutil.which(p) is None]
    if missing:
        unavailable("missing %s: apt-get install --no-install-recommends "
                    "libvirt-daemon-system libvirt-clients qemu-system-x86" % ", ".join(missing))
    if os.geteuid() != 0:
        unavailable("needs root to run libvirtd for qemu:///system")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(libvirt's capabilities, capsfast's, each with machines) as read back."""
    need_libvirtd()
    tmp = str(tmp_path_factory.mktemp("libvirtd"))
    ours_pid = None
    if running_daemon() is None:
        ours_pid = start_daemon(tmp)
    try:
        theirs = virsh("capabilities")
        assert theirs.returncode == 0, theirs.stderr
    finally:
        if ours_pid is not None:
            stop_daemon(ours_pid)
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
    ours = subprocess.run([sys.executable, "-m", "capsfast", "capabilities", "--machines"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert ours.returncode == 0, ours.stderr
    return libvirt_xml.read(theirs.stdout), libvirt_xml.read(ours.stdout), theirs.stdout, ours.stdout


def keyed(caps):
    return {(g.os_type, g.arch, g.wordsize, g.emulator): g for g in caps.guests}


def test_same_host_arch_and_cpu(both):
    theirs, ours, their_text, our_text = both
    assert ours.arch == theirs.arch
    from lxml import etree

    t, o = etree.fromstring(their_text.encode()), etree.fromstring(our_text.encode())
    for path in ("host/cpu/vendor",):
        if t.find(path) is not None and o.find(path) is not None:
            assert o.findtext(path) == t.findtext(path)
    ts, os_ = t.find("host/cpu/signature"), o.find("host/cpu/signature")
    if ts is not None and os_ is not None:
        assert dict(os_.attrib) == dict(ts.attrib)


def cpu_facts(text):
    """The host <cpu> as (tag, attributes, text) per element, in order,
    leaving out what this test does not compare (topology, pages)."""
    from lxml import etree

    cpu = etree.fromstring(text.encode()).find("host/cpu")
    return [(e.tag, dict(e.attrib), (e.text or "").strip()) for e in cpu
            if e.tag not in ("topology", "pages")]


def test_same_host_cpu_element_for_element(both):
    theirs, ours = cpu_facts(both[2]), cpu_facts(both[3])
    assert [f for f in theirs if f[0] == "model"], "libvirt names no host CPU model: is its cpu_map installed?"
    assert ours == theirs


def test_same_migration_features(both):
    from lxml import etree

    def migration(text):
        found = etree.fromstring(text.encode()).find("host/migration_features")
        return None if found is None else [(e.tag, dict(e.attrib), (e.text or "").strip()) for e in found.iter()]

    assert migration(both[3]) == migration(both[2])


def test_same_guests(both):
    theirs, ours = both[:2]
    assert theirs.guests, "libvirt lists no guest: is qemu-system-x86 installed?"
    assert sorted(keyed(ours)) == sorted(keyed(theirs))


def test_same_domain_types_per_guest(both):
    theirs, ours = keyed(both[0]), keyed(both[1])
    assert {k: g.domains for k, g in ours.items()} == {k: g.domains for k, g in theirs.items()}


def test_same_guest_features(both):
    theirs, ours = keyed(both[0]), keyed(both[1])
    assert {k: g.features for k, g in ours.items()} == {k: g.features for k, g in theirs.items()}


def test_same_machine_names(both):
    theirs, ours = keyed(both[0]), keyed(both[1])
    for key, guest in theirs.items():
        if guest.machines and key in ours:
            assert sorted(m.name for m in ours[key].machines or ()) == sorted(m.name for m in guest.machines), key

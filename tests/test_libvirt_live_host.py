"""capsfast's host topology against the real libvirt on this machine.

Starts ``libvirtd`` as tests/test_libvirt_live.py does (same needs: root,
Debian's libvirt-daemon-system, libvirt-clients, qemu-system-x86; skips on
a developer's machine without them, fails in CI), and compares the
``<host>`` of ``virsh -c qemu:///system capabilities`` with ``capsfast
capabilities``: the ``<cpu><topology>`` line, the ``<pages>`` sizes of
``<cpu>``, ``<iommu support>``, each NUMA cell (id, memory, page sizes and
counts, distances, CPUs with socket, die, core and siblings) and the
``<cache>`` banks.

Differences that remain, and how the test treats them:
- ``<uuid>``: where no DMI product UUID is readable, libvirt makes up a
  random one at each daemon start; capsfast gives /etc/machine-id as a
  UUID.  Compared only where the DMI UUID is readable.
- Memory per cell and the base page count: this VM's memory can change
  (balloon, hotplug).  The node's MemTotal is read before and after the
  two commands; only when it changed between them may those two differ.
- Free huge pages are never printed; the counts compared are the pools.
"""
import os
import subprocess
import sys

import pytest

from test_libvirt_live import need_libvirtd, running_daemon, start_daemon, stop_daemon, virsh

NODE_MEMINFO = "/sys/devices/system/node/node%d/meminfo"
DMI_UUID = ("/sys/devices/virtual/dmi/id/product_uuid", "/sys/class/dmi/id/product_uuid")


def node_memory():
    """Each node's meminfo MemTotal line, to tell a change of memory."""
    out = {}
    node = 0
    while os.path.exists(NODE_MEMINFO % node):
        with open(NODE_MEMINFO % node) as f:
            out[node] = [line for line in f if "MemTotal" in line]
        node += 1
    with open("/proc/meminfo") as f:
        out[-1] = [line for line in f if line.startswith("MemTotal")]
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(libvirt's <host>, capsfast's <host>, whether memory changed
    between the two reads), as lxml elements."""
    need_libvirtd()
    from lxml import etree

    tmp = str(tmp_path_factory.mktemp("libvirtd"))
    ours_pid = None
    if running_daemon() is None:
        ours_pid = start_daemon(tmp)
    try:
        virsh("capabilities")  # warm: the daemon probes its emulators once
        before = node_memory()
        theirs = virsh("capabilities")
        ours = subprocess.run([sys.executable, "-m", "capsfast", "capabilities"], capture_output=True, text=True,
                              timeout=120)
        after = node_memory()
    finally:
        if ours_pid is not None:
            stop_daemon(ours_pid)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    return (etree.fromstring(theirs.stdout.encode()).find("host"),
            etree.fromstring(ours.stdout.encode()).find("host"), before != after)


def attrs(element):
    return None if element is None else dict(element.attrib)


def test_cpu_topology(both):
    theirs, ours, _ = both
    assert attrs(ours.find("cpu/topology")) == attrs(theirs.find("cpu/topology"))
    assert ours.find("cpu/topology") is not None


def test_page_sizes(both):
    theirs, ours, _ = both
    assert [attrs(p) for p in ours.findall("cpu/pages")] == [attrs(p) for p in theirs.findall("cpu/pages")]


def test_iommu_support(both):
    theirs, ours, _ = both
    assert attrs(ours.find("iommu")) == attrs(theirs.find("iommu"))


def test_uuid_where_libvirt_reads_one(both):
    theirs, ours, _ = both
    readable = any(os.access(path, os.R_OK) for path in DMI_UUID)
    if not readable:
        # libvirt's is random per daemon start: only its form compares.
        assert len(ours.findtext("uuid")) == len(theirs.findtext("uuid")) == 36
        return
    assert ours.findtext("uuid") == theirs.findtext("uuid")


def cells(host):
    return host.findall("topology/cells/cell")


def test_cells_cpus_and_distances(both):
    theirs, ours, _ = both
    assert [c.get("id") for c in cells(ours)] == [c.get("id") for c in cells(theirs)]
    assert ours.find("topology/cells").get("num") == theirs.find("topology/cells").get("num")
    for o, t in zip(cells(ours), cells(theirs)):
        assert attrs(o.find("cpus")) == attrs(t.find("cpus"))
        assert [attrs(c) for c in o.findall("cpus/cpu")] == [attrs(c) for c in t.findall("cpus/cpu")]
        assert [attrs(s) for s in o.findall("distances/sibling")] == [attrs(s) for s in t.findall("distances/sibling")]


def test_cells_memory_and_pages(both):
    theirs, ours, memory_changed = both
    for o, t in zip(cells(ours), cells(theirs)):
        assert [p.get("size") for p in o.findall("pages")] == [p.get("size") for p in t.findall("pages")]
        # Huge page pools: equal.  The base pages and the memory: equal
        # unless the memory changed between the two reads.
        assert [(p.get("size"), p.text) for p in o.findall("pages")[1:]] == [
            (p.get("size"), p.text) for p in t.findall("pages")[1:]]
        if not memory_changed:
            assert o.findtext("memory") == t.findtext("memory")
            assert o.findall("pages")[0].text == t.findall("pages")[0].text


def test_cache_banks(both):
    theirs, ours, _ = both
    assert [attrs(b) for b in ours.findall("cache/bank")] == [attrs(b) for b in theirs.findall("cache/bank")]

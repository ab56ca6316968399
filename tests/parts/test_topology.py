"""The host topology, NUMA cells, cache banks, page sizes, UUID and IOMMU
support (capsfast.parts.topology: read, parse, decide) against libvirt's rules.

The honest reference is libvirt's own test data (tests/data/libvirt, see
its README): each sysfs tree of virhostcputest with the topology libvirt
computes from it, and the trees of vircaps2xmltest with the cells' CPUs
and the cache banks libvirt formats.  The fake trees built here cover what
that data does not (memory and page counts, distances, offline CPUs,
huge pages, hostile files); their expected XML follows libvirt's code,
named at each step.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import capsfast
from capsfast.parts.topology import DMI_UUID_FILES
from capsfast.parts.topology import decide as topology_decide, parse as topology_parse, read as topology_read
from capsfast.sources import rounds
from capsfast.render import libvirt as render_libvirt

DATA = Path(__file__).parent.parent / "data" / "libvirt"


def root_with_system(tmp_path, system):
    """A root whose /sys/devices/system is ``system`` (libvirt's tests
    point SYSFS_SYSTEM_PATH at such a tree)."""
    root = tmp_path / "root"
    (root / "sys" / "devices").mkdir(parents=True)
    # A copy: a link out of the root would be followed inside it, as a
    # chroot would (it would name the root's own /sys/devices/system).
    shutil.copytree(system, root / "sys" / "devices" / "system", symlinks=True)
    return root


def layout_reads(root):
    return topology_read.collect(rounds.fetch(str(root)))


# -- libvirt's virhostcputest data ----------------------------------------------

EXPECTED = re.compile(r"CPUs: (\d+)/(\d+), MHz: \d+, Nodes: (\d+), Sockets: (\d+), Cores: (\d+), Threads: (\d+)")
HOSTCPU_CASES = sorted(p.name for p in (DATA / "virhostcpudata").glob("linux-*.expected"))


@pytest.mark.parametrize("expected", HOSTCPU_CASES)
def test_node_info_equals_libvirts(expected, tmp_path):
    arch, _, name = expected[len("linux-"):-len(".expected")].partition("-")
    text = (DATA / "virhostcpudata" / expected).read_text()
    cpus, maxcpus, nodes, sockets, cores, threads = map(int, EXPECTED.match(text).groups())
    root = root_with_system(tmp_path, DATA / "virhostcpudata" / ("linux-" + name))
    got = topology_decide.node_info(layout_reads(root), s390=arch.startswith("s390"))
    assert got[:5] == (cpus, nodes, sockets, cores, threads)
    assert got[1] * got[2] * got[3] * got[4] == maxcpus
    # And as a probe of that root shows it (dies: always 1 for the host).
    host = capsfast.probe(root=str(root), arch=arch)
    assert (host.topology.sockets, host.topology.dies, host.topology.cores, host.topology.threads) == (
        sockets, 1, cores, threads)


# -- libvirt's vircaps2xmltest data ---------------------------------------------

def cells_and_cache(xml):
    """Per cell its id and <cpu/> lines, and the <cache> lines, quotes
    made alike: what libvirt's test data holds of the sysfs tree."""
    xml = xml.replace("'", '"')
    cells = re.findall(r'<cell id="(\d+)">(.*?)</cell>', xml, re.S)
    out = [(cell, re.findall(r"<cpu id=[^>]*/>", body)) for cell, body in cells]
    return out, re.findall(r"<bank [^>]*/>", xml)


# libvirt's linux-basic-dies/system holds only two links, to
# virhostcpudata/linux-with-die's cpu/ and node/: that tree stands in.
SYSTEM_TREES = {
    "basic": DATA / "vircaps2xmldata" / "linux-basic" / "system",
    "basic-dies": DATA / "virhostcpudata" / "linux-with-die",
    "caches": DATA / "vircaps2xmldata" / "linux-caches" / "system",
}


@pytest.mark.parametrize("name", sorted(SYSTEM_TREES))
def test_cells_and_caches_equal_libvirts(name, tmp_path):
    # virnumamock gives every node (n+1) GiB and invents its page counts;
    # libvirt's real code reads the node's meminfo, so the copy gets one
    # (the memory and pages of the expected file are not compared).
    tree = tmp_path / "system"
    shutil.copytree(SYSTEM_TREES[name], tree)
    for node in (tree / "node").glob("node[0-9]*"):
        n = int(node.name[4:])
        (node / "meminfo").write_text("Node %d MemTotal:       %d kB\n" % (n, (n + 1) << 20))
    root = root_with_system(tmp_path, tree)
    host = capsfast.probe(root=str(root), arch="x86_64")
    ours = cells_and_cache(render_libvirt.render(host))
    theirs = cells_and_cache((DATA / "vircaps2xmldata" / ("vircaps-x86_64-%s.xml" % name)).read_text())
    assert ours == theirs
    assert ours[0], "no cell compared"


# -- fake trees with expected XML from libvirt's rules ---------------------------

def write(root, path, text):
    target = Path(str(root) + path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def two_node_host(root):
    """Two sockets, each its own NUMA node, two cores of two threads each;
    CPU 7 offline (the kernel drops its topology directory and leaves it
    out of its node's cpulist, but not of the node's directory); socket 1
    on die 1; huge pages on node 0; one L3 per socket; IOMMU groups; a DMI
    UUID."""
    sysd = "/sys/devices/system"
    write(root, sysd + "/cpu/present", "0-7\n")
    write(root, sysd + "/cpu/online", "0-6\n")
    write(root, sysd + "/cpu/cpu7/online", "0\n")
    siblings = {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3", 4: "4,6", 5: "5", 6: "4,6"}
    for cpu in range(7):
        socket = cpu // 4
        base = "%s/cpu/cpu%d" % (sysd, cpu)
        if cpu:
            write(root, base + "/online", "1\n")
        write(root, base + "/topology/physical_package_id", "%d\n" % socket)
        write(root, base + "/topology/die_id", "%d\n" % socket)
        write(root, base + "/topology/core_id", "%d\n" % (cpu % 2))
        write(root, base + "/topology/thread_siblings_list", siblings[cpu] + "\n")
        write(root, base + "/cache/index0/level", "1\n")
        write(root, base + "/cache/index0/id", "%d\n" % cpu)
        write(root, base + "/cache/index0/type", "Data\n")
        write(root, base + "/cache/index0/size", "32K\n")
        write(root, base + "/cache/index0/shared_cpu_list", siblings[cpu] + "\n")
        write(root, base + "/cache/index3/level", "3\n")
        write(root, base + "/cache/index3/id", "%d\n" % socket)
        write(root, base + "/cache/index3/type", "Unified\n")
        write(root, base + "/cache/index3/size", "16384K\n")
        write(root, base + "/cache/index3/shared_cpu_list", "%s\n" % ("0-3" if socket == 0 else "4-6"))
    for node, cpus, distance, huge in ((0, range(4), "10 21", (512, 1)), (1, range(4, 8), "21 10", (0, 0))):
        base = "%s/node/node%d" % (sysd, node)
        for cpu in cpus:
            Path(str(root) + base + "/cpu%d" % cpu).mkdir(parents=True)
        write(root, base + "/cpulist", "0-3\n" if node == 0 else "4-6\n")
        write(root, base + "/distance", distance + "\n")
        write(root, base + "/meminfo", "Node %d MemTotal:       4194304 kB\nNode %d MemFree:   1 kB\n" % (node, node))
        for size, count in zip((2048, 1048576), huge):
            write(root, base + "/hugepages/hugepages-%dkB/nr_hugepages" % size, "%d\n" % count)
            write(root, base + "/hugepages/hugepages-%dkB/free_hugepages" % size, "0\n")
    write(root, sysd + "/node/online", "0-1\n")
    for size in (2048, 1048576):
        write(root, "/sys/kernel/mm/hugepages/hugepages-%dkB/nr_hugepages" % size, "0\n")
        write(root, "/sys/kernel/mm/hugepages/hugepages-%dkB/free_hugepages" % size, "0\n")
    for group in ("0", "1"):
        Path(str(root) + "/sys/kernel/iommu_groups/" + group).mkdir(parents=True)
    write(root, "/sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8054-B4C04F4B4B32\n")
    write(root, "/etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    write(root, "/proc/meminfo", "MemTotal:        8388608 kB\nMemFree:  1 kB\n")
    return root


# Derived by hand from libvirt's code: virHostCPUGetInfoPopulateLinux
# counts per node (node 0: 4 CPUs, 1 socket, 2 cores, 2 threads; node 1: 3
# online CPUs and 1 offline, 1 socket, 2 cores, 2 threads), 2 nodes x 1 x
# 2 x 2 = 8 = 7 + 1 offline, so no fallback; virNumaGetPages: node 0 holds
# 512 x 2 MiB + 1 x 1 GiB of huge pages out of 4 GiB, leaving 2 GiB = 524288
# pages of 4 KiB; virCapabilitiesInitCaches: level 1 is not listed, each
# socket's L3 once, 16384K = 16 MiB.  virQEMUCapsInit: the QEMU driver's
# <migration_features> (live; tcp, rdma) between <iommu> and <topology>.
TWO_NODE_HOST_XML = """\
  <host>
    <uuid>4c4c4544-0042-3510-8054-b4c04f4b4b32</uuid>
    <cpu>
      <arch>x86_64</arch>
      <topology sockets="1" dies="1" cores="2" threads="2"/>
      <pages unit="KiB" size="4"/>
      <pages unit="KiB" size="2048"/>
      <pages unit="KiB" size="1048576"/>
    </cpu>
    <iommu support="yes"/>
    <migration_features>
      <live/>
      <uri_transports>
        <uri_transport>tcp</uri_transport>
        <uri_transport>rdma</uri_transport>
      </uri_transports>
    </migration_features>
    <topology>
      <cells num="2">
        <cell id="0">
          <memory unit="KiB">4194304</memory>
          <pages unit="KiB" size="4">524288</pages>
          <pages unit="KiB" size="2048">512</pages>
          <pages unit="KiB" size="1048576">1</pages>
          <distances>
            <sibling id="0" value="10"/>
            <sibling id="1" value="21"/>
          </distances>
          <cpus num="4">
            <cpu id="0" socket_id="0" die_id="0" core_id="0" siblings="0,2"/>
            <cpu id="1" socket_id="0" die_id="0" core_id="1" siblings="1,3"/>
            <cpu id="2" socket_id="0" die_id="0" core_id="0" siblings="0,2"/>
            <cpu id="3" socket_id="0" die_id="0" core_id="1" siblings="1,3"/>
          </cpus>
        </cell>
        <cell id="1">
          <memory unit="KiB">4194304</memory>
          <pages unit="KiB" size="4">1048576</pages>
          <pages unit="KiB" size="2048">0</pages>
          <pages unit="KiB" size="1048576">0</pages>
          <distances>
            <sibling id="0" value="21"/>
            <sibling id="1" value="10"/>
          </distances>
          <cpus num="3">
            <cpu id="4" socket_id="1" die_id="1" core_id="0" siblings="4,6"/>
            <cpu id="5" socket_id="1" die_id="1" core_id="1" siblings="5"/>
            <cpu id="6" socket_id="1" die_id="1" core_id="0" siblings="4,6"/>
          </cpus>
        </cell>
      </cells>
    </topology>
    <cache>
      <bank id="0" level="3" type="both" size="16" unit="MiB" cpus="0-3"/>
      <bank id="1" level="3" type="both" size="16" unit="MiB" cpus="4-6"/>
    </cache>
  </host>
"""


def host_part(xml):
    return xml[xml.index("  <host>"):xml.index("  </host>") + len("  </host>\n")]


def probe_xml(root):
    return host_part(render_libvirt.render(capsfast.probe(root=str(root), arch="x86_64")))


def test_two_node_host(tmp_path):
    root = two_node_host(tmp_path / "root")
    assert probe_xml(root) == TWO_NODE_HOST_XML


def test_two_node_host_json(tmp_path):
    root = two_node_host(tmp_path / "root")
    doc = json.loads(capsfast.capabilities(capsfast.probe(root=str(root), arch="x86_64"), format="json"))
    host = doc["host"]
    assert host["uuid"] == "4c4c4544-0042-3510-8054-b4c04f4b4b32"
    assert host["pages"] == [4, 2048, 1048576]
    assert host["cache"] == [
        {"id": 0, "level": 3, "type": "both", "size_bytes": 16 << 20, "cpus": [0, 1, 2, 3]},
        {"id": 1, "level": 3, "type": "both", "size_bytes": 16 << 20, "cpus": [4, 5, 6]},
    ]
    t = host["topology"]
    assert (t["sockets"], t["dies"], t["cores"], t["threads"]) == (1, 1, 2, 2)
    assert [c["id"] for c in t["cells"]] == [0, 1]
    assert t["cells"][0]["pages"][0] == {"size_kib": 4, "count": 524288}
    assert t["cells"][1]["distances"] == [{"id": 0, "value": 21}, {"id": 1, "value": 10}]
    assert t["cells"][1]["cpus"][0] == {"id": 4, "socket_id": 1, "die_id": 1, "core_id": 0, "siblings": [4, 6]}


def no_numa_host(root):
    """No /sys/devices/system/node (a kernel without NUMA): three CPUs in
    two sockets of unequal size, so the topology product (1 node x 2
    sockets x 2 cores x 1 thread = 4) is not the CPU count (3)."""
    sysd = "/sys/devices/system"
    write(root, sysd + "/cpu/present", "0-2\n")
    write(root, sysd + "/cpu/online", "0-2\n")
    for cpu, socket, core in ((0, 0, 0), (1, 0, 1), (2, 1, 0)):
        base = "%s/cpu/cpu%d/topology/" % (sysd, cpu)
        write(root, base + "physical_package_id", "%d\n" % socket)
        write(root, base + "core_id", "%d\n" % core)
        write(root, base + "thread_siblings_list", "%d\n" % cpu)
    write(root, "/proc/meminfo", "MemTotal:        2048000 kB\n")
    write(root, "/etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    return root


# libvirt's fallback (nodes 1, sockets 1, cores = CPUs + offline, threads
# 1) and virCapabilitiesHostNUMAInitFake: one cell 0 with /proc/meminfo's
# memory, the CPUs numbered through that topology, no pages or distances;
# the UUID from /etc/machine-id (capsfast's choice where libvirt invents
# one); no iommu_groups directory on a host with sysfs: no IOMMU; the QEMU
# driver's <migration_features>.
NO_NUMA_HOST_XML = """\
  <host>
    <uuid>3d1219c7-c4c5-404a-aa1f-6d2a48adfda4</uuid>
    <cpu>
      <arch>x86_64</arch>
      <topology sockets="1" dies="1" cores="3" threads="1"/>
      <pages unit="KiB" size="4"/>
    </cpu>
    <iommu support="no"/>
    <migration_features>
      <live/>
      <uri_transports>
        <uri_transport>tcp</uri_transport>
        <uri_transport>rdma</uri_transport>
      </uri_transports>
    </migration_features>
    <topology>
      <cells num="1">
        <cell id="0">
          <memory unit="KiB">2048000</memory>
          <cpus num="3">
            <cpu id="0" socket_id="0" die_id="0" core_id="0" siblings="0"/>
            <cpu id="1" socket_id="0" die_id="0" core_id="1" siblings="1"/>
            <cpu id="2" socket_id="0" die_id="0" core_id="2" siblings="2"/>
          </cpus>
        </cell>
      </cells>
    </topology>
  </host>
"""


def test_no_numa_host_falls_back_as_libvirt_does(tmp_path):
    root = no_numa_host(tmp_path / "root")
    assert probe_xml(root) == NO_NUMA_HOST_XML


def test_a_root_without_sysfs_says_nothing_of_it(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    host = capsfast.probe(root=str(root), arch="x86_64")
    assert host.topology == (None, None, None, None, None)
    assert (host.cache, host.pages, host.uuid, host.iommu_groups) == (None, None, None, None)
    # Only what does not come from sysfs: the arch, and the QEMU driver's
    # migration features.
    xml = probe_xml(root)
    assert xml.startswith("  <host>\n    <cpu>\n      <arch>x86_64</arch>\n    </cpu>\n    <migration_features>\n")
    assert xml.endswith("    </migration_features>\n  </host>\n")


def test_layout_is_lazy_and_read_once(tmp_path, monkeypatch):
    root = two_node_host(tmp_path / "root")
    calls = []
    real = topology_read.read_keyed
    monkeypatch.setattr(topology_read, "read_keyed", lambda *a: calls.append(a) or real(*a))
    host = capsfast.probe(root=str(root), arch="x86_64")
    host.kvm, host.guests
    assert calls == []
    host.topology, host.cache, host.pages, host.uuid, host.iommu_groups
    assert len(calls) == 1


# -- hostile and broken trees: unknown, never a wrong answer ---------------------

def test_garbage_socket_makes_the_topology_unknown(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/devices/system/cpu/cpu0/topology/physical_package_id", "zero\n")
    host = capsfast.probe(root=str(root), arch="x86_64")
    # libvirt fails both its count and its cells (real and fake) here.
    assert host.topology == (None, None, None, None, None)
    assert len(host.cache) == 2  # the caches do not depend on it
    xml = probe_xml(root)
    assert "<topology" not in xml and "<cells" not in xml


def test_malformed_cpulist_leaves_the_cell_out(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/devices/system/node/node1/cpulist", "4-2,x\n")
    cells = capsfast.probe(root=str(root), arch="x86_64").topology.cells
    assert [c.id for c in cells] == [0]  # libnuma fails on it: libvirt skips the cell


def test_huge_cpulist_is_refused(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/devices/system/node/node1/cpulist", "0-4294967295\n")
    cells = capsfast.probe(root=str(root), arch="x86_64").topology.cells
    assert [c.id for c in cells] == [0]


def test_a_directory_where_a_cache_file_belongs_makes_the_cache_unknown(tmp_path):
    root = two_node_host(tmp_path / "root")
    # cpu0: the first thread of its core (0,2), whose caches are read.
    path = Path(str(root) + "/sys/devices/system/cpu/cpu0/cache/index3/shared_cpu_list")
    path.unlink()
    path.mkdir()
    host = capsfast.probe(root=str(root), arch="x86_64")
    assert host.cache is None
    assert "<cache>" not in probe_xml(root)


def test_caches_are_read_per_core_and_per_bank(tmp_path):
    """The stated difference from libvirt, which reads every online CPU's
    caches: cpu2's are its core's (0,2) first thread's, and its L3 bank
    (0-3) is cpu0's; a file of cpu2 that the kernel would never break is
    not read, so breaking it in a hand-made tree does not fail the caches.
    A CPU whose siblings list does not name it is read itself."""
    root = two_node_host(tmp_path / "root")
    expected = capsfast.probe(root=str(root), arch="x86_64").cache
    assert expected
    path = Path(str(root) + "/sys/devices/system/cpu/cpu2/cache/index3/shared_cpu_list")
    path.unlink()
    path.mkdir()
    assert capsfast.probe(root=str(root), arch="x86_64").cache == expected
    # cpu6's list no longer names it: read apart, and its broken file counts.
    write(root, "/sys/devices/system/cpu/cpu6/topology/thread_siblings_list", "4\n")
    path = Path(str(root) + "/sys/devices/system/cpu/cpu6/cache/index3/level")
    path.unlink()
    path.mkdir()
    assert capsfast.probe(root=str(root), arch="x86_64").cache is None


def test_unknown_cache_type_makes_the_cache_unknown(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/devices/system/cpu/cpu0/cache/index3/type", "Victim\n")
    assert capsfast.probe(root=str(root), arch="x86_64").cache is None


def test_garbage_hugepage_count_fakes_the_cells_as_libvirt_does(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "12x\n")
    cells = capsfast.probe(root=str(root), arch="x86_64").topology.cells
    # virNumaGetPages fails, so does virCapabilitiesHostNUMAInitReal, and
    # libvirt fakes one cell per node from the topology, each numbered 0.
    assert [c.id for c in cells] == [0, 0]
    assert [c.pages for c in cells] == [(), ()]
    assert [[u.id for u in c.cpus] for c in cells] == [[0, 1, 2, 3], [4, 5, 6]]


def test_product_uuid_of_equal_bytes_is_not_a_uuid(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/class/dmi/id/product_uuid", "00000000-0000-0000-0000-000000000000\n")
    assert capsfast.probe(root=str(root), arch="x86_64").uuid == "3d1219c7-c4c5-404a-aa1f-6d2a48adfda4"
    write(root, "/etc/machine-id", "not a machine id\n")
    assert capsfast.probe(root=str(root), arch="x86_64").uuid is None


@pytest.mark.parametrize("text, ids", [
    ("0-3,8,10-11\n", (0, 1, 2, 3, 8, 10, 11)),
    ("\n", ()),
    ("5", (5,)),
    ("3-1", None),
    ("1,,2", None),
    ("-1", None),
    ("0-70000", None),
    ("1 2", None),
])
def test_parse_cpulist(text, ids):
    assert topology_parse.parse_cpulist(text) == ids


@pytest.mark.parametrize("size, shown", [
    (16 << 20, (16, "MiB")), (260 << 20, (260, "MiB")), (512 << 10, (512, "KiB")), (1000, (1000, "B")),
    (0, (0, "B")), (3 << 30, (3, "GiB")),
])
def test_pretty_size_as_virFormatIntPretty(size, shown):
    assert render_libvirt.pretty_size(size) == shown


def test_format_bitmap_as_virBitmapFormat():
    assert render_libvirt.format_bitmap((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    assert render_libvirt.format_bitmap(()) == ""


def test_cli_on_hostile_roots_never_tracebacks(tmp_path):
    root = two_node_host(tmp_path / "root")
    write(root, "/sys/devices/system/cpu/online", "\xff\xfe garbage\n")
    write(root, "/sys/devices/system/node/node0/distance", "ten twenty\n")
    (Path(str(root) + "/sys/kernel/iommu_groups/0")).rmdir()
    os.symlink("/nonexistent", str(root) + "/sys/kernel/iommu_groups/0")
    for fmt in ("libvirt", "json"):
        done = subprocess.run([sys.executable, "-m", "capsfast", "capabilities", "--root", str(root),
                               "--arch", "x86_64", "--format", fmt], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr


# -- a large host: reads, not interpreter time, and no list left out ------------

def big_host(root, cpus=1024, nodes=8):
    sysd = "/sys/devices/system"
    write(root, sysd + "/cpu/present", "0-%d\n" % (cpus - 1))
    write(root, sysd + "/cpu/online", "0-%d\n" % (cpus - 1))
    per_node = cpus // nodes
    for cpu in range(cpus):
        base = "%s/cpu/cpu%d/" % (sysd, cpu)
        node = cpu // per_node
        write(root, base + "topology/physical_package_id", "%d\n" % node)
        write(root, base + "topology/core_id", "%d\n" % (cpu % per_node // 2))
        first = cpu - cpu % 2
        write(root, base + "topology/thread_siblings_list", "%d-%d\n" % (first, first + 1))
        write(root, base + "cache/index3/level", "3\n")
        write(root, base + "cache/index3/id", "%d\n" % node)
        write(root, base + "cache/index3/type", "Unified\n")
        write(root, base + "cache/index3/size", "32768K\n")
        write(root, base + "cache/index3/shared_cpu_list",
              "%d-%d\n" % (node * per_node, node * per_node + per_node - 1))
    for node in range(nodes):
        base = "%s/node/node%d" % (sysd, node)
        for cpu in range(node * per_node, (node + 1) * per_node):
            Path(str(root) + base + "/cpu%d" % cpu).mkdir(parents=True)
        for block in range(2000):  # memory blocks: a long listing
            Path(str(root) + base + "/memory%d" % (node * 2000 + block)).mkdir()
        write(root, base + "/cpulist", "%d-%d\n" % (node * per_node, (node + 1) * per_node - 1))
        write(root, base + "/distance", " ".join("10" if n == node else "20" for n in range(nodes)) + "\n")
        write(root, base + "/meminfo", "Node %d MemTotal:       1048576 kB\n" % node)
    write(root, "/proc/meminfo", "MemTotal:        8388608 kB\n")
    return root


def test_a_1024_cpu_host(tmp_path):
    root = big_host(tmp_path / "root")
    host = capsfast.probe(root=str(root), arch="x86_64")
    t = host.topology
    assert (t.sockets, t.dies, t.cores, t.threads) == (1, 1, 64, 2)
    assert [len(c.cpus) for c in t.cells] == [128] * 8
    assert t.cells[7].cpus[-1] == (1023, 7, 0, 63, (1022, 1023))
    assert [b.id for b in host.cache] == list(range(8))
    assert t.cells[3].distances[3] == (3, 10)


def test_read_files_in_one_crossing(tmp_path):
    from capsfast import _native

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one").write_text("1\n")
    (tmp_path / "d" / "two").write_text("twenty two\n")
    files = [
        (str(tmp_path / "d" / "one"), _native.READ, 64),
        (str(tmp_path / "d" / "absent"), _native.READ, 64),
        (str(tmp_path / "d" / "two"), _native.READ, 4),      # does not fit
        (str(tmp_path / "d"), _native.LIST, 64),
        (str(tmp_path / "d"), _native.READ, 64),              # a directory is never read
        (str(tmp_path / "d" / "one"), _native.LIST, 64),      # nor a file listed
    ]
    out = _native.read_files(files)
    assert out[0] == (_native.OK, b"1\n", False)
    assert out[1][0].code == "absent" and out[1][1:] == (None, False)
    assert out[2] == (_native.OK, b"twen", True)
    assert out[3][0] is _native.OK and sorted(out[3][1].split(b"\0")) == [b"", b"one", b"two"]
    assert out[4][0].code == "not_a_file" and out[4][1] is None
    assert out[5][0].code == "failed" and out[5][0].reason == os.strerror(20)  # ENOTDIR
    assert _native.read_files([]) == []


# -- this machine: recorded, replayed, and as an unprivileged user --------------

def mem_total():
    with open("/proc/meminfo") as f:
        return [line for line in f if line.startswith("MemTotal")]


def node_memory():
    """Each node's MemTotal line, and /proc/meminfo's: to tell whether this
    VM's memory changed between two reads."""
    lines = mem_total()
    for path in sorted(Path("/sys/devices/system/node").glob("node[0-9]*/meminfo")):
        lines += [line for line in path.read_text().splitlines() if "MemTotal" in line]
    return lines


def without_memory(xml):
    """The <host> part without what this VM's memory changes (the cells'
    memory and base page counts)."""
    host = host_part(xml)
    host = re.sub(r"<memory unit=\"KiB\">\d+</memory>", "<memory/>", host)
    return re.sub(r'(<pages unit="KiB" size="4">)\d+', r"\1N", host)


def capsfast_cli(*args):
    done = subprocess.run([sys.executable, "-m", "capsfast"] + list(args), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not os.path.isdir("/sys/devices/system/cpu"), reason="no sysfs here")
def test_record_then_replay_prints_the_same_host(tmp_path):
    before = node_memory()
    capsfast_cli("record", str(tmp_path / "rec"))
    live = capsfast_cli("capabilities")
    changed = node_memory() != before
    replayed = capsfast_cli("capabilities", "--replay", str(tmp_path / "rec"))
    assert "<cells num=" in replayed and '<topology sockets="' in replayed
    # Equal, memory included, unless this VM's memory changed meanwhile.
    if changed:
        assert without_memory(replayed) == without_memory(live)
    else:
        assert host_part(replayed) == host_part(live)


@pytest.mark.skipif(not os.path.isdir("/sys/devices/system/cpu"), reason="no sysfs here")
def test_the_collectors_recording_replays_the_same_layout(tmp_path):
    from capsfast.recording import collector
    from capsfast.recording import remote

    files = collector.collect(remote.plan("test"))
    for name, (data, mode) in files.items():
        target = tmp_path / name
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    live = topology_read.read(rounds.fetch("/"))
    replayed = capsfast.probe(replay=str(tmp_path))
    assert replayed.topology.cells and replayed.cache is not None and replayed.pages is not None
    assert (replayed.topology.sockets, replayed.topology.cores, replayed.topology.threads) == (
        live.topology.sockets, live.topology.cores, live.topology.threads)
    assert [[c.cpus for c in cells] for cells in (replayed.topology.cells, live.topology.cells)] == [
        [c.cpus for c in live.topology.cells]] * 2
    assert (replayed.cache, replayed.pages, replayed.uuid, replayed.iommu_groups) == (
        live.cache, live.pages, live.uuid, live.iommu_groups)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_an_unprivileged_user_reads_the_same_layout():
    from forked import in_child

    def layout():
        got = topology_read.read(rounds.fetch("/"))
        return got.topology, got.cache, got.pages, got.uuid, got.iommu_groups

    before = node_memory()
    ours = layout()
    answer = in_child(layout, user=(65534, 65534), hang="the unprivileged read hung")
    assert answer[0] == "ok", answer
    theirs = answer[1]
    if node_memory() == before:
        assert theirs[0] == ours[0]
    else:  # this VM's memory changed between the two reads
        assert [c.cpus for c in theirs[0].cells] == [c.cpus for c in ours[0].cells]
    assert theirs[1:3] == ours[1:3]
    assert theirs[4] == ours[4]
    # The DMI UUID is root's to read: without it, /etc/machine-id.
    dmi = [p for p in DMI_UUID_FILES if os.path.exists(p)]
    if not dmi:
        assert theirs[3] == ours[3]
    else:
        assert theirs[3] is not None


def test_watch_neither_reads_nor_reports_the_layout(tmp_path):
    from capsfast import watch
    from capsfast.model import Lazy

    root = two_node_host(tmp_path / "root")
    host = capsfast.probe(root=str(root), arch="x86_64")
    facts = watch.flat(host)
    assert [key for key in facts if key.startswith(("host.topology", "host.cache", "host.pages", "host.uuid"))] == []
    assert "host.kvm.usable" in facts
    index = host._fields.index("topology")
    assert tuple.__getitem__(host, index).__class__ is Lazy and tuple.__getitem__(host, index).pending


def test_cache_files_are_read_once_a_core_and_once_a_bank(tmp_path):
    """Two threads a core, one L3 bank per 128 CPUs: the second thread's
    caches are never asked for, and each bank's id, type and size once;
    the answer is the one every CPU's files give."""
    from capsfast.bench.fixtures import fake_topology_root

    root = fake_topology_root(str(tmp_path), 256)
    asked = []
    fetch = rounds.fetch(root)

    def spy(requests):
        asked.extend(path for path, _op in requests)
        return fetch(requests)

    layout = topology_decide.decide(topology_read.collect(spy), topology_read.PAGE_KIB)
    cache_paths = [p for p in asked if "/cache" in p]
    assert cache_paths and not [p for p in cache_paths if int(p.split("/cpu")[2].split("/")[0]) % 2]
    assert len([p for p in asked if p.endswith("index3/id")]) == 2  # CPUs 0-127 and 128-255
    assert len(asked) == len(set(asked))
    assert [(b.id, b.level, b.cpus) for b in layout.cache] == [(0, 3, tuple(range(128))),
                                                              (1, 3, tuple(range(128, 256)))]

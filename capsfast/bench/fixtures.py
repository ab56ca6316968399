"""Fake roots for the scaling figures: a /proc/cpuinfo of many processors
and a sysfs of many CPUs, written into a temporary directory."""
from __future__ import annotations

import os

def fake_topology_root(directory: str, cpus: int) -> str:
    """A fake root whose sysfs shows ``cpus`` CPUs: two threads a core,
    one socket, NUMA node and L3 cache per 128 CPUs (or one in all)."""
    root = os.path.join(directory, "topology-root")
    system = root + "/sys/devices/system"
    per_node = min(cpus, 128)
    nodes = max(cpus // per_node, 1)

    def put(path: str, text: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    put(system + "/cpu/present", "0-%d\n" % (cpus - 1))
    put(system + "/cpu/online", "0-%d\n" % (cpus - 1))
    for cpu in range(cpus):
        base = "%s/cpu/cpu%d/" % (system, cpu)
        node, first = cpu // per_node, cpu - cpu % 2
        put(base + "topology/physical_package_id", "%d\n" % node)
        put(base + "topology/die_id", "0\n")
        put(base + "topology/core_id", "%d\n" % (cpu % per_node // 2))
        put(base + "topology/thread_siblings_list", "%d-%d\n" % (first, first + 1))
        for index, level, kind in ((0, 1, "Data"), (3, 3, "Unified")):
            cache = base + "cache/index%d/" % index
            put(cache + "level", "%d\n" % level)
            put(cache + "id", "%d\n" % (node if level == 3 else cpu // 2))
            put(cache + "type", kind + "\n")
            put(cache + "size", "32768K\n" if level == 3 else "48K\n")
            put(cache + "shared_cpu_list", "%d-%d\n" % ((node * per_node, node * per_node + per_node - 1)
                                                        if level == 3 else (first, first + 1)))
    for node in range(nodes):
        base = "%s/node/node%d" % (system, node)
        for cpu in range(node * per_node, (node + 1) * per_node):
            os.makedirs(base + "/cpu%d" % cpu)
        put(base + "/cpulist", "%d-%d\n" % (node * per_node, (node + 1) * per_node - 1))
        put(base + "/distance", " ".join("10" if n == node else "20" for n in range(nodes)) + "\n")
        put(base + "/meminfo", "Node %d MemTotal:       4194304 kB\n" % node)
        put(base + "/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
        put(base + "/hugepages/hugepages-2048kB/free_hugepages", "0\n")
    put(root + "/proc/meminfo", "MemTotal:        %d kB\n" % (4194304 * nodes))
    return root


def fake_cpuinfo_root(directory: str, cpus: int) -> tuple[str, int]:
    """A fake root whose /proc/cpuinfo lists ``cpus`` processors, each block
    a copy of this host's first (or a plausible one)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            block = f.read(65536).split(b"\n\n")[0]
    except OSError:
        block = b""
    if b"flags" not in block:
        block = (b"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                 b"stepping\t: 7\nflags\t\t: fpu pae lm nx vmx")
    lines = block.split(b"\n")[1:]
    text = b"".join(
        b"processor\t: %d\n" % n + b"\n".join(lines) + b"\n\n" for n in range(cpus)
    )
    root = os.path.join(directory, "cpus-%d" % cpus)
    os.makedirs(os.path.join(root, "proc"))
    with open(os.path.join(root, "proc", "cpuinfo"), "wb") as f:
        f.write(text)
    return root, len(text)

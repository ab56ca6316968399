"""The ``--json`` document of a run, the targets it is held to, and the
text table.  Targets are ratios to figures of the same run (the floor, one
empty call into C, ``python -c pass``) or counts, never absolute times,
which do not carry from one machine to another."""
from __future__ import annotations

from capsfast.bench.measure import FORBIDDEN_AT_IMPORT, SCHEMA_VERSION, Bench, Document, ResultRow, Target, \
    ratio_of, rounded, sum_of
from capsfast.parts import kvm_caps as caps_part

def floor_first_probe(b: Bench) -> float | None:
    """CPUID count x one CPUID + the syscalls of a first probe."""
    syscalls = b.median("syscalls_devices")
    if syscalls is None:
        return None
    if b.first_probe_reads_cpu_files:
        syscalls += b.median("syscalls_cpu_files") or 0.0
    return b.cpuid_first_probe * (b.median("cpuid_one") or 0.0) + syscalls


def document(b: Bench) -> Document:
    return {
        "schema_version": SCHEMA_VERSION,
        "quick": b.quick,
        "machine": b.machine,
        "import_forbidden_modules": b.import_forbidden,
        "cpuid_first_probe": b.cpuid_first_probe,
        "cpuid_walk": {
            "entries": b.walk_entries,
            "cpuid_instructions": b.walk_cpuids,
            "ratio_to_one_cpuid": rounded(ratio_of(b.median("cpuid_walk"), b.median("cpuid_one"))),
            "run_by_first_probe": b.walk_in_first_probe,
        },
        "modules_imported_by_first_probe": b.lazy_modules,
        "floor_first_probe_us": rounded(floor_first_probe(b)),
        "kvm_caps_per_ioctl_us": rounded(b.kvm_caps_per_ioctl),
        "cpuinfo_scaling": b.scaling,
        "topology_scaling": b.topology,
        "alternatives": b.alternatives,
        "results": [r.as_dict() for r in b.results.values()],
        "targets": targets(b),
    }


def _bytes_read(b: Bench, cpus: int) -> int | None:
    scale = b.scaling.get("cpus_%d" % cpus)
    return None if scale is None else scale["bytes_read"]


def targets(b: Bench) -> list[Target]:
    """What the product promises, each as a ratio to a figure of this run
    (or a count), with the measured value and whether it was met."""
    def row(name: str, value: float | None, limit: float, unit: str = "x") -> Target:
        value = rounded(value)  # met as the printed value reads
        met = None if value is None else value <= limit
        return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met}

    m = b.median
    first = m("first_probe")
    empty = m("crossing_empty")
    bare = m("process_python_pass")
    return [
        row("first probe() / its warm floor (CPUID count x one CPUID + its syscalls in C)",
            ratio_of(first, floor_first_probe(b)), 1.25),
        row("first probe() / its cold floor (the same crossing alone, first thing in a fresh process)",
            ratio_of(first, m("floor_cold")), 1.25),
        row("modules imported lazily by the first probe()", len(b.lazy_modules), 0, "modules"),
        # Its five leaves at most: the full CPUID walk is for recordings only.
        row("CPUID instructions in a first probe() (never the full walk)", b.cpuid_first_probe, 5,
            "CPUID instructions"),
        # 10 us against 6.4 us of syscalls where first measured: a refresh
        # adds at most half its own system calls.
        row("probe(refresh=True) / its own syscalls in C, results unread",
            ratio_of(m("probe_refresh"), m("syscalls_devices")), 1.5),
        # Cached answers never cross into C: less than one empty crossing.
        row("cached probe() / one empty call into C", ratio_of(m("probe_cached"), empty), 1.0),
        row("cached kvm_usable() / one empty call into C", ratio_of(m("kvm_usable_cached"), empty), 1.0),
        row("libvirt XML of a cached probe / one empty call into C (not rendered again)",
            ratio_of(m("render_libvirt_cached"), empty), 1.0),
        row("modules among %s imported by import capsfast" % ", ".join(FORBIDDEN_AT_IMPORT),
            len(b.import_forbidden), 0, "modules"),
        row("capsfast check -q / python -c pass, whole processes", ratio_of(m("process_check_q"), bare), 2.0),
        row("capsfast check -q --for firecracker / python -c pass, whole processes",
            ratio_of(m("process_check_firecracker"), bare), 2.0),
        # Naming the answers adds at most half of what asking the kernel costs.
        row("Host.kvm_caps / its crossing into C (open, ioctls, close)",
            ratio_of(m("kvm_caps_read"), m("kvm_caps_crossing")), 1.5),
        row("capsfast capabilities --format json / python -c pass, whole processes",
            ratio_of(m("process_capabilities_json"), bare), 2.0),
        row("capsfast capabilities (libvirt XML) / python -c pass, whole processes",
            ratio_of(m("process_capabilities_libvirt"), bare), 2.0),
        # The default command replaces virsh's: clearly faster, and with
        # --machines (its caches warm) not slower.
        row("capsfast capabilities / virsh -c qemu:///system capabilities, whole processes, interleaved",
            ratio_of(m("process_capabilities_libvirt"), m("alt_virsh")), 0.95),
        row("capsfast capabilities --machines, caches warm / virsh capabilities, whole processes, interleaved",
            ratio_of(m("process_capabilities_machines"), m("alt_virsh")), 1.0),
        # The disk cache makes a second process's host CPU model cheap.
        row("host CPU model from the disk cache / cold (CPU map load + decode)",
            ratio_of(m("cpu_model_cached"), sum_of(m("cpu_map_load"), m("cpu_model_decode"))), 0.05),
        row("/proc/cpuinfo bytes read, 1024 CPUs / 2 CPUs",
            ratio_of(_bytes_read(b, 1024), _bytes_read(b, 2)), 1.0),
        # Reads, not interpreter time: the whole read (7258 files and
        # listings in six crossings where measured, caches once a core and
        # once a bank, libvirt's rules decided in Python) at most 1.3x its
        # reads in C, and no worse than linear in the CPUs.
        row("host topology of 1024 CPUs / its reads in C alone",
            ratio_of(m("topology_1024_cpus"), m("topology_1024_cpus_floor")), 1.3),
        row("host topology of 1024 CPUs / 512 x that of 2 CPUs",
            ratio_of(m("topology_1024_cpus"), 512 * (m("topology_2_cpus") or 0)), 1.0),
        # A daemon keeps its answer in memory; a warm capsfast process reads
        # the cached transcript and must still not be slower.
        row("capsfast domcapabilities, transcript cached / virsh domcapabilities, whole processes, interleaved",
            ratio_of(m("domcaps_warm"), m("alt_virsh_domcaps")), 1.0),
        # An agent asking many times a second gets the kept answer: about
        # 5 us where an empty call into C costs 0.25 us.
        row("capsfast.domain_capabilities() called again in-process / one empty call into C",
            ratio_of(m("domcaps_repeat"), empty), 20.0),
        row("first capsfast.domain_capabilities() in a fresh process / libvirt-python's warm "
            "getDomainCapabilities()", ratio_of(m("domcaps_first"), m("alt_libvirt_python_domcaps")), 1.0),
    ]


# -- output --------------------------------------------------------------------

def format_text(doc: Document) -> str:
    """The results as a readable table."""
    mach = doc["machine"]
    lines = [
        "capsfast bench%s on %s (%s CPUs, %s), Linux %s, Python %s; load %s before, %s after"
        % (" --quick" if doc["quick"] else "", mach["cpu_model"] or mach["arch"], mach["cpus"], mach["arch"],
           mach["kernel"], mach["python"], " ".join("%.2f" % x for x in mach["load_average"]),
           " ".join("%.2f" % x for x in mach["load_average_after"])),
        "",
        "%-12s %-12s %-12s %5s  %s" % ("median", "low", "high", "runs", "what"),
    ]
    by_key = {r["key"]: r for r in doc["results"]}
    alternatives = set(doc["alternatives"])

    def fmt(r: ResultRow) -> str:
        if r["median_us"] is None:
            return "%-12s %-12s %-12s %5s  %s: %s" % ("-", "-", "-", 0, r["what"], r["note"])
        note = "  (%s)" % r["note"] if r["note"] else ""
        return "%-12s %-12s %-12s %5d  %s%s" % (
            _human(r["median_us"]), _human(r["low_us"]), _human(r["high_us"]), r["runs"], r["what"], note)

    lines += [fmt(r) for r in doc["results"] if r["key"] not in alternatives]
    walk = doc["cpuid_walk"]
    lines += ["", "CPUID instructions in a first probe: %d; floor of a first probe: %s"
              % (doc["cpuid_first_probe"], _human(doc["floor_first_probe_us"])),
              "full CPUID walk (recordings only): %d entries, %d CPUID instructions, %s one CPUID; "
              "run by a first probe: %s"
              % (walk["entries"], walk["cpuid_instructions"],
                 "-" if walk["ratio_to_one_cpuid"] is None else _ratio(walk["ratio_to_one_cpuid"]) + "x",
                 "yes" if walk["run_by_first_probe"] else "no"),
              "KVM_CHECK_EXTENSION (Host.kvm_caps, %d capabilities, one crossing): %s per capability"
              % (len(caps_part.KVM_CAPS), _human(doc["kvm_caps_per_ioctl_us"])),
              "modules the first probe imported: %s" % (", ".join(doc["modules_imported_by_first_probe"]) or "none"),
              "forbidden modules after import capsfast: %s" % (", ".join(doc["import_forbidden_modules"]) or "none")]
    s2, s1024 = doc["cpuinfo_scaling"]["cpus_2"], doc["cpuinfo_scaling"]["cpus_1024"]
    lines.append("/proc/cpuinfo of 2 CPUs (%d bytes): %d bytes read; of 1024 CPUs (%d bytes): %d bytes read"
                 % (s2["file_bytes"], s2["bytes_read"], s1024["file_bytes"], s1024["bytes_read"]))
    for scale in doc["topology_scaling"].values():
        lines.append("host topology of %d CPUs: %d rounds, %d files, %s (%s a CPU)"
                     % (scale["cpus"], scale["rounds"], scale["files"], _human(scale["median_us"]),
                        _human(scale["per_cpu_us"])))
    lines += ["", "alternatives (x = median / probe(refresh=True) of this run):"]
    refresh = by_key["probe_refresh"]["median_us"]
    for key in doc["alternatives"]:
        r = by_key[key]
        line = fmt(r)
        if r["median_us"] is not None and refresh:
            line += "  [%sx]" % _ratio(r["median_us"] / refresh)
        lines.append(line)
    lines += ["", "targets (x = ratio to a figure of this run):"]
    for t in doc["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append("  %-6s %-10s (limit %s)  %s" % (
            verdict, _amount(t["value"], t["unit"]), _amount(t["limit"], t["unit"]), t["target"]))
    return "\n".join(lines) + "\n"


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return _ratio(value) + "x"
    return "%g %s" % (value, unit)


def _human(us: float | None) -> str:
    if us is None:
        return "-"
    if us >= 1e6:
        return "%.2f s" % (us / 1e6)
    if us >= 1e3:
        return "%.2f ms" % (us / 1e3)
    return "%.2f us" % us


def _ratio(x: float) -> str:
    return "%.0f" % x if x >= 100 else "%.2f" % x

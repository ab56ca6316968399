"""``capsfast bench``: what a probe costs on this host, against the floor
(CPUID and the probe's own syscalls, measured in the same run) and against
what a user would otherwise run.

Each figure is the median of its runs with the lowest and highest run
beside it; ratios are computed from figures of the same run.  "First in a
process" figures come from fresh interpreters (``sys.executable``), each
reporting its own timing, so the parent's startup is not counted.  Nothing
here asserts a time: the targets are printed with the measured values.
"""
import os
import subprocess
import sys
import tempfile
import time

from capsfast.argv import Option, parse, usage

OPTIONS = (
    Option(("--json",), "print the results as JSON"),
    Option(("--quick",), "few runs (a smoke test; the figures are rough)"),
    Option(("--slow",), "also measure py-cpuinfo (about a second per run)"),
)
SUMMARY = (
    "Measure probe latency on this host: import, first and repeated probes,\n"
    "rendering, the floor (CPUID, syscalls) and the alternatives present here."
)
FORBIDDEN_AT_IMPORT = ("lxml", "argparse", "json", "re", "dataclasses", "typing", "threading")
SCHEMA_VERSION = 1

# Fresh-interpreter snippets; each prints one line of Python literals.
_CHILD_IMPORT = """
import sys, time
before = set(sys.modules)
t = time.perf_counter_ns()
import capsfast
t = time.perf_counter_ns() - t
print(repr((t / 1e3, sorted(m for m in %r if m in set(sys.modules) - before))))
""" % (FORBIDDEN_AT_IMPORT,)

_CHILD_FIRST_PROBE = """
import sys, time
import capsfast
from capsfast import _native
before = set(sys.modules)
n = _native.cpuid_executed()
t = time.perf_counter_ns()
host = capsfast.probe()
t = time.perf_counter_ns() - t
print(repr((t / 1e3, _native.cpuid_executed() - n, sorted(set(sys.modules) - before),
            host.kernel_flags is not None)))
"""

# The first probe and its guests: what capabilities() needs, emulator
# discovery (a listing of each PATH directory) included.
_CHILD_FIRST_PROBE_GUESTS = """
import time
import capsfast
t = time.perf_counter_ns()
capsfast.probe().guests
print(repr(((time.perf_counter_ns() - t) / 1e3,)))
"""

# The first crossing as the first probe makes it, with no decoding: the
# hardware's cost for a first probe, at the same cold start.
_CHILD_COLD_FLOOR = """
import sys, time
import capsfast.probe
from capsfast import _native
probe = sys.modules["capsfast.probe"]
batch = probe._take(*probe._LIVE_PLAN)[0]
want = _native.HAS_CPUID and probe.normalize_arch(__import__("os").uname().machine) in probe.X86
t = time.perf_counter_ns()
batch.bare(want)
t = time.perf_counter_ns() - t
print(repr((t / 1e3,)))
"""

_CHILD_FIRST_RENDER = """
import sys, time
import capsfast
host = capsfast.probe()
t = time.perf_counter_ns()
try:
    capsfast.capabilities(host, %r)
except ImportError as e:
    print(repr((None, "renderer not available: %%s" %% e)))
else:
    print(repr(((time.perf_counter_ns() - t) / 1e3, None)))
"""


class Result:
    """One measured figure: ``samples`` in microseconds."""

    __slots__ = ("key", "what", "samples", "note")

    def __init__(self, key, what, samples, note=None):
        self.key = key
        self.what = what
        self.samples = sorted(samples)
        self.note = note

    @property
    def median(self):
        s = self.samples
        if not s:
            return None
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2

    def as_dict(self):
        s = self.samples
        return {
            "key": self.key,
            "what": self.what,
            "median_us": _round(self.median),
            "low_us": _round(s[0]) if s else None,
            "high_us": _round(s[-1]) if s else None,
            "runs": len(s),
            "note": self.note,
        }


def _round(value):
    if value is None:
        return None
    return round(value, 3) if value < 100 else round(value, 1)


class _Progress:
    """One rewritten line on stderr, only when it is a terminal."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.on = sys.stderr.isatty()

    def step(self, text):
        self.done += 1
        if self.on:
            sys.stderr.write("\r\033[Kcapsfast bench [%d/%d] %s" % (self.done, self.total, text))
            sys.stderr.flush()

    def end(self):
        if self.on:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _per_call(fn, number, repeat):
    """Microseconds per call, one sample per batch of ``number`` calls."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(repeat):
        t = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - t) / 1e3 / number)
    return samples


def _child_env():
    """The environment for fresh interpreters: this capsfast first on the path."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _child(code, env):
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError("benchmark child failed: %s" % (out.stderr.strip().splitlines() or ["?"])[-1])
    import ast

    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def _process_times(argv, runs, env, timeout=120):
    """Wall-clock microseconds of whole processes, and the last exit status."""
    import threading

    samples = []
    status = None
    for _ in range(runs):
        t = time.perf_counter_ns()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A blocking wait: Popen.wait(timeout) polls with growing sleeps,
        # which rounds a 10 ms process up to the next poll.
        killed = []
        watchdog = threading.Timer(timeout, lambda: killed.append(child.kill()))
        watchdog.start()
        try:
            status = child.wait()
        finally:
            watchdog.cancel()
        if killed:
            raise subprocess.TimeoutExpired(argv, timeout)
        samples.append((time.perf_counter_ns() - t) / 1e3)
    return samples, status


def _which(name):
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _cpuinfo_parse():
    """What a script does without capsfast: read /proc/cpuinfo whole and
    look for vmx/svm in the flags of every processor."""
    with open("/proc/cpuinfo") as f:
        text = f.read()
    found = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            found.update(line.partition(":")[2].split())
    return "vmx" in found or "svm" in found


def _fake_cpuinfo_root(directory, cpus):
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


def _probe_module():
    # ``capsfast.probe`` the attribute is the function; this is the module.
    import importlib

    return importlib.import_module("capsfast.probe")


def cpuinfo_bytes_read(root):
    """Bytes of ``root``/proc/cpuinfo that a probe of that root reads."""
    probe = _probe_module()
    _cpu, _kvm, files = probe._run(root, True, False, False, False)
    data = files["cpuinfo"][1][2]
    return 0 if data is None else len(data)


def _machine():
    info = {"cpus": os.cpu_count(), "kernel": os.uname().release, "arch": os.uname().machine,
            "python": sys.version.split()[0], "executable": sys.executable}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    info.setdefault("cpu_model", None)
    info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _libvirtd_running():
    """Whether a libvirt daemon answers locally: its socket exists.  The
    benchmark never starts one."""
    for sock in ("/run/libvirt/libvirt-sock", "/var/run/libvirt/libvirt-sock",
                 "/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock-ro"):
        if os.path.exists(sock):
            return True
    return False


def run(quick=False, slow=False, progress=None):
    """All measurements as a dict (the ``--json`` document)."""
    import capsfast
    from capsfast import _native

    probe_mod = _probe_module()

    runs = 3 if quick else 15           # fresh interpreters per figure
    loops = (200, 5) if quick else (5000, 15)  # (calls per sample, samples)
    env = _child_env()
    progress = progress or _Progress(0)
    out = {"schema_version": SCHEMA_VERSION, "quick": quick, "machine": _machine()}
    results = {}

    def keep(result):
        results[result.key] = result

    # -- capsfast in fresh interpreters ------------------------------------
    progress.step("import capsfast (fresh interpreters)")
    samples, forbidden = [], set()
    for _ in range(runs):
        t, bad = _child(_CHILD_IMPORT, env)
        samples.append(t)
        forbidden.update(bad)
    keep(Result("import", "import capsfast, in a fresh interpreter", samples))
    out["import_forbidden_modules"] = sorted(forbidden)

    progress.step("first probe() in a process")
    samples, counts, lazy, cpu_files = [], set(), set(), False
    for _ in range(runs):
        t, count, imported, read_cpu_files = _child(_CHILD_FIRST_PROBE, env)
        samples.append(t)
        counts.add(count)
        lazy.update(imported)
        cpu_files = read_cpu_files
    keep(Result("first_probe", "first probe() in a fresh process (CPUID, devices, decoding)", samples))
    out["cpuid_first_probe"] = max(counts)
    out["modules_imported_by_first_probe"] = sorted(lazy)

    samples = [_child(_CHILD_FIRST_PROBE_GUESTS, env)[0] for _ in range(runs)]
    keep(Result("first_probe_guests", "first probe() and its guests in a fresh process (lists the PATH)",
                samples))

    progress.step("cold floor (bare first crossing)")
    samples = [_child(_CHILD_COLD_FLOOR, env)[0] for _ in range(runs)]
    keep(Result("floor_cold", "the first probe's crossing alone, first thing in a fresh process", samples))

    for fmt in ("libvirt", "json"):
        progress.step("first %s rendering" % fmt)
        samples, note = [], None
        for _ in range(runs):
            t, note = _child(_CHILD_FIRST_RENDER % fmt, env)
            if t is not None:
                samples.append(t)
        keep(Result("render_%s_first" % fmt, "first capabilities(format=%r) in a process (imports its renderer)" % fmt,
                    samples, note))

    # -- in this process -----------------------------------------------------
    capsfast.probe()
    progress.step("probe(refresh=True)")
    keep(Result("probe_refresh", "probe(refresh=True): devices and files again, not the CPU",
                _per_call(lambda: capsfast.probe(refresh=True), loops[0], loops[1])))
    try:
        from capsfast import emulators
    except ImportError:
        pass
    else:
        keep(Result("emulators_repeat", "emulator discovery again (one stat per PATH directory), on reading guests",
                    _per_call(lambda: emulators.discover("/"), loops[0] // 2, loops[1])))
    progress.step("cached probe() and kvm_usable()")
    keep(Result("probe_cached", "probe(), cached", _per_call(capsfast.probe, loops[0] * 10, loops[1])))
    keep(Result("kvm_usable_cached", "kvm_usable(), cached", _per_call(capsfast.kvm_usable, loops[0] * 10, loops[1])))
    for fmt in ("libvirt", "json"):
        progress.step("cached %s rendering" % fmt)
        try:
            capsfast.capabilities(format=fmt)
        except ImportError as e:
            keep(Result("render_%s_cached" % fmt, "capabilities(format=%r), cached probe" % fmt, [],
                        "renderer not available: %s" % e))
            continue
        keep(Result("render_%s_cached" % fmt, "capabilities(format=%r), cached probe" % fmt,
                    _per_call(lambda: capsfast.capabilities(format=fmt), max(loops[0] // 10, 10), loops[1])))

    # -- the floor -----------------------------------------------------------
    progress.step("floor: CPUID and syscalls")
    per_crossing = _native.crossing(True)
    empty = _per_call(lambda: _native.crossing(False), loops[0], loops[1])
    with_cpuid = _per_call(lambda: _native.crossing(True), max(loops[0] // 10, 20), loops[1])
    keep(Result("crossing_empty", "one call into C doing nothing (cffi's cost)", empty))
    one = Result("cpuid_one", "one CPUID instruction (a %d-CPUID crossing minus an empty one, / %d)"
                 % (per_crossing, per_crossing), [])
    if per_crossing:
        floor_empty = Result("", "", empty).median
        one.samples = sorted(max(s - floor_empty, 0) / per_crossing for s in with_cpuid)
    else:
        one.note = "this build runs no CPUID (not x86)"
    keep(one)
    batch = probe_mod._take(*probe_mod._LIVE_PLAN)[0]
    keep(Result("syscalls_devices", "the device and file syscalls of one probe, in C, results unread",
                _per_call(batch.bare, loops[0], loops[1])))
    syscall_floor = results["syscalls_devices"].median
    if cpu_files:
        cpu_batch = _native.Batch(None, probe_mod.devices.batch_specs("/", probe_mod.devices.CPU_FILES))
        keep(Result("syscalls_cpu_files", "the once-per-process reads of /proc/cpuinfo and the MSRs, in C",
                    _per_call(cpu_batch.bare, max(loops[0] // 10, 20), loops[1])))
        syscall_floor += results["syscalls_cpu_files"].median
    cpuid_median = one.median or 0.0
    floor_first = out["cpuid_first_probe"] * cpuid_median + syscall_floor
    out["floor_first_probe_us"] = _round(floor_first)

    # -- the 1024-processor proof -------------------------------------------
    progress.step("/proc/cpuinfo with 2 and 1024 processors")
    scaling = {}
    with tempfile.TemporaryDirectory(prefix="capsfast-bench-") as tmp:
        for cpus in (2, 1024):
            root, size = _fake_cpuinfo_root(tmp, cpus)
            read = cpuinfo_bytes_read(root)
            samples = _per_call(lambda: capsfast.probe(root=root, arch="x86_64"),
                                max(loops[0] // 20, 10), loops[1])
            keep(Result("fake_root_%d_cpus" % cpus,
                        "probe(root=fake) whose /proc/cpuinfo lists %d processors" % cpus, samples))
            scaling["cpus_%d" % cpus] = {"file_bytes": size, "bytes_read": read,
                                          "median_us": _round(results["fake_root_%d_cpus" % cpus].median)}
    out["cpuinfo_scaling"] = scaling

    # -- alternatives --------------------------------------------------------
    alternatives = []
    progress.step("Python /proc/cpuinfo parse")
    if os.path.exists("/proc/cpuinfo"):
        alternatives.append(Result("alt_cpuinfo_python", "read and parse /proc/cpuinfo flags in Python (%d CPUs)"
                                   % os.cpu_count(), _per_call(_cpuinfo_parse, max(loops[0] // 10, 20), loops[1])))
    alt_runs = 1 if quick else 5
    virsh = _which("virsh")
    progress.step("virsh capabilities")
    if virsh is None:
        alternatives.append(Result("alt_virsh", "virsh capabilities, a process", [], "virsh is not installed"))
    elif not _libvirtd_running():
        alternatives.append(Result("alt_virsh", "virsh capabilities, a process", [],
                                   "libvirtd is not running (no socket under /run/libvirt); not started by the benchmark"))
    else:
        samples, status = _process_times([virsh, "-c", "qemu:///system", "capabilities"], alt_runs, None)
        alternatives.append(Result("alt_virsh", "virsh -c qemu:///system capabilities, a process", samples,
                                   None if status == 0 else "exit status %d" % status))
    progress.step("libvirt-python getCapabilities()")
    alternatives.append(_libvirt_python(loops, quick))
    for key, name, argv, what in (
        ("alt_kvm_ok", "kvm-ok", [], "kvm-ok, a process"),
        ("alt_virt_host_validate", "virt-host-validate", ["qemu"], "virt-host-validate qemu, a process"),
    ):
        progress.step(name)
        path = _which(name)
        if path is None:
            alternatives.append(Result(key, what, [], "%s is not installed" % name))
            continue
        samples, status = _process_times([path] + argv, alt_runs, None)
        alternatives.append(Result(key, what, samples, "exit status %d" % status if status else None))
    progress.step("py-cpuinfo")
    alternatives.append(_py_cpuinfo(slow, quick))
    for r in alternatives:
        keep(r)
    out["alternatives"] = [r.key for r in alternatives]

    # -- whole processes -----------------------------------------------------
    progress.step("whole processes against python -c pass")
    script = os.path.join(os.path.dirname(sys.executable), "capsfast")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        base = [script]
    else:
        base = [sys.executable, "-c", "import sys; from capsfast.cli import main; sys.exit(main())"]
    proc_runs = 3 if quick else 20
    bare, check, caps = [], [], []
    for _ in range(proc_runs):  # interleaved, so drifts in load hit all three
        bare += _process_times([sys.executable, "-c", "pass"], 1, env)[0]
        check += _process_times(base + ["check", "-q"], 1, env)[0]
        caps += _process_times(base + ["capabilities", "--format", "json"], 1, env)[0]
    keep(Result("process_python_pass", "python -c pass, a process (same interpreter)", bare))
    keep(Result("process_check_q", "capsfast check -q, a process", check))
    keep(Result("process_capabilities_json", "capsfast capabilities --format json, a process", caps))

    out["results"] = [r.as_dict() for r in results.values()]
    out["targets"] = _targets(results, out)
    out["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _libvirt_python(loops, quick):
    what = "libvirt-python getCapabilities(), in-process, connection open"
    try:
        import libvirt
    except ImportError:
        return Result("alt_libvirt_python", what, [], "libvirt-python is not importable")
    if not _libvirtd_running():
        return Result("alt_libvirt_python", what, [], "libvirtd is not running; not started by the benchmark")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.openReadOnly("qemu:///system")
        conn.getCapabilities()
    except libvirt.libvirtError as e:
        return Result("alt_libvirt_python", what, [], "cannot connect: %s" % str(e).splitlines()[0])
    try:
        return Result("alt_libvirt_python", what,
                      _per_call(conn.getCapabilities, 3 if quick else 50, loops[1]))
    finally:
        conn.close()


def _py_cpuinfo(slow, quick):
    what = "py-cpuinfo get_cpu_info(), in-process"
    if not slow:
        return Result("alt_py_cpuinfo", what, [], "only with --slow")
    try:
        import cpuinfo
    except ImportError:
        return Result("alt_py_cpuinfo", what, [], "py-cpuinfo is not importable")
    return Result("alt_py_cpuinfo", what, _per_call(cpuinfo.get_cpu_info, 1, 1 if quick else 3))


def _targets(results, out):
    """Each issue target with the measured value and whether it was met."""
    def m(key):
        r = results.get(key)
        return r.median if r is not None else None

    def row(name, value, limit, unit):
        met = None if value is None or limit is None else value <= limit
        return {"target": name, "value": _round(value), "limit": _round(limit), "unit": unit, "met": met}

    floor = out["floor_first_probe_us"]
    cold = m("floor_cold")
    first = m("first_probe")
    bare = m("process_python_pass")
    ratio = lambda a, b: None if a is None or not b else a / b  # noqa: E731
    rows = [
        row("first probe() / floor (CPUID count x one CPUID + syscalls), warm floor",
            ratio(first, floor), 1.25, "x"),
        row("first probe() / the same crossing first in a fresh process (cold floor)",
            ratio(first, cold), 1.25, "x"),
        row("modules imported lazily by the first probe()", len(out["modules_imported_by_first_probe"]), 0, "modules"),
        row("probe(refresh=True)", m("probe_refresh"), 10.0, "us"),
        row("cached probe()", m("probe_cached"), 0.5, "us"),
        row("cached kvm_usable()", m("kvm_usable_cached"), 0.5, "us"),
        row("libvirt XML of a cached probe", m("render_libvirt_cached"), 5.0, "us"),
        row("modules among %s imported by import capsfast" % ", ".join(FORBIDDEN_AT_IMPORT),
            len(out["import_forbidden_modules"]), 0, "modules"),
        row("capsfast check -q / python -c pass, whole processes", ratio(m("process_check_q"), bare), 2.0, "x"),
        row("capsfast capabilities --format json / python -c pass", ratio(m("process_capabilities_json"), bare),
            2.0, "x"),
        row("/proc/cpuinfo bytes read, 1024 CPUs / 2 CPUs",
            ratio(out["cpuinfo_scaling"]["cpus_1024"]["bytes_read"],
                  out["cpuinfo_scaling"]["cpus_2"]["bytes_read"]), 1.0, "x"),
    ]
    return rows


def format_text(out):
    """The results as a readable table."""
    mach = out["machine"]
    lines = [
        "capsfast bench%s on %s (%s CPUs, %s), Linux %s, Python %s; load %s before, %s after"
        % (" --quick" if out["quick"] else "", mach["cpu_model"] or mach["arch"], mach["cpus"], mach["arch"],
           mach["kernel"], mach["python"], " ".join("%.2f" % x for x in mach["load_average"]),
           " ".join("%.2f" % x for x in mach["load_average_after"])),
        "",
        "%-12s %-12s %-12s %5s  %s" % ("median", "low", "high", "runs", "what"),
    ]
    by_key = {r["key"]: r for r in out["results"]}
    alternatives = set(out["alternatives"])
    mine = [r for r in out["results"] if r["key"] not in alternatives]

    def fmt(r):
        if r["median_us"] is None:
            return "%-12s %-12s %-12s %5s  %s: %s" % ("-", "-", "-", 0, r["what"], r["note"])
        note = "  (%s)" % r["note"] if r["note"] else ""
        return "%-12s %-12s %-12s %5d  %s%s" % (
            _human(r["median_us"]), _human(r["low_us"]), _human(r["high_us"]), r["runs"], r["what"], note)

    lines += [fmt(r) for r in mine]
    lines += ["", "CPUID instructions in a first probe: %d; floor of a first probe: %s"
              % (out["cpuid_first_probe"], _human(out["floor_first_probe_us"])),
              "modules the first probe imported: %s" % (", ".join(out["modules_imported_by_first_probe"]) or "none"),
              "forbidden modules after import capsfast: %s" % (", ".join(out["import_forbidden_modules"]) or "none")]
    s2, s1024 = out["cpuinfo_scaling"]["cpus_2"], out["cpuinfo_scaling"]["cpus_1024"]
    lines.append("/proc/cpuinfo of 2 CPUs (%d bytes): %d bytes read; of 1024 CPUs (%d bytes): %d bytes read"
                 % (s2["file_bytes"], s2["bytes_read"], s1024["file_bytes"], s1024["bytes_read"]))
    lines += ["", "alternatives (x = median / cached probe(refresh=True) of this run):"]
    refresh = by_key["probe_refresh"]["median_us"]
    for key in out["alternatives"]:
        r = by_key[key]
        line = fmt(r)
        if r["median_us"] is not None and refresh:
            line += "  [%sx]" % _ratio(r["median_us"] / refresh)
        lines.append(line)
    lines += ["", "targets:"]
    for t in out["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        value = "-" if t["value"] is None else ("%s%s" % (_ratio(t["value"]) if t["unit"] == "x" else t["value"],
                                                          " " + t["unit"] if t["unit"] != "x" else "x"))
        lines.append("  %-6s %-10s (limit %s%s)  %s" % (
            verdict, value, t["limit"], "x" if t["unit"] == "x" else " " + t["unit"], t["target"]))
    return "\n".join(lines) + "\n"


def _human(us):
    if us is None:
        return "-"
    if us >= 1e6:
        return "%.2f s" % (us / 1e6)
    if us >= 1e3:
        return "%.2f ms" % (us / 1e3)
    return "%.2f us" % us


def _ratio(x):
    return "%.0f" % x if x >= 100 else "%.2f" % x


def to_json(value, indent=""):
    """JSON text; floats here, the rest through capsfast's own encoder."""
    from capsfast.render.json import dumps

    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "null"
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = (inner + dumps(str(k)) + ": " + to_json(v, inner) for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)) and value:
        return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + "\n" + indent + "]"
    return dumps(value, indent)


def main(argv):
    values = parse(OPTIONS, (), argv)
    if values["help"]:
        sys.stdout.write(usage("capsfast bench", OPTIONS, (), SUMMARY))
        return 0
    progress = _Progress(19)
    try:
        out = run(quick=values["quick"], slow=values["slow"], progress=progress)
    except (RuntimeError, subprocess.SubprocessError) as e:
        sys.stderr.write("capsfast: bench: %s\n" % e)
        return 1
    finally:
        progress.end()
    if values["json"]:
        sys.stdout.write(to_json(out) + "\n")
    else:
        sys.stdout.write(format_text(out))
    return 0

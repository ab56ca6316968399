"""What a user would otherwise run, measured on the same host: a Python
parse of /proc/cpuinfo, libvirt-python, kvm-ok, virt-host-validate,
py-cpuinfo, virsh (locally and over SSH), and the whole-process figures
that set ``capsfast`` against ``python -c pass`` and virsh, interleaved.
Nothing here starts a daemon."""
from __future__ import annotations

import os
import sys
import time

from capsfast.bench.measure import Bench, Result, capsfast_command, per_call_us, process_time, step, which

# virsh may take seconds a call (a daemon that re-probes QEMU each time):
# past this total it leaves the interleaved loop.
VIRSH_BUDGET_S = (2.0, 10.0)  # (--quick, full)


# the alternatives

@step("Python /proc/cpuinfo parse")
def alt_cpuinfo_python(b: Bench) -> None:
    what = "read and parse /proc/cpuinfo flags in Python (%s CPUs)" % os.cpu_count()
    if not os.path.exists("/proc/cpuinfo"):
        b.keep(Result("alt_cpuinfo_python", what, [], "no /proc/cpuinfo"), alternative=True)
        return
    b.keep(Result("alt_cpuinfo_python", what, b.per_call(_cpuinfo_parse, divisor=10, at_least=20)),
           alternative=True)


@step("libvirt-python getCapabilities()")
def alt_libvirt_python(b: Bench) -> None:
    b.keep(_libvirt_python(b), alternative=True)


def _alt_process(b: Bench, key: str, name: str, args: list[str], what: str) -> None:
    path = which(name)
    if path is None:
        b.keep(Result(key, what, [], "%s is not installed" % name), alternative=True)
        return
    samples, status = [], 0
    for _ in range(b.alt_runs):
        t, status = process_time([path] + args, None)
        samples.append(t)
    b.keep(Result(key, what, samples, "exit status %d" % status if status else None), alternative=True)


@step("first capabilities answer in a fresh process, per-boot cache warm and cold")
def first_answer(b: Bench) -> None:
    """What a program pays for its first answer: import capsfast and
    capabilities() (libvirt XML), timed inside a fresh interpreter, with
    the on-disk caches filled by an earlier process (warm) and with none
    (cold: an empty cache directory and CAPSFAST_CACHE=off), interleaved."""
    import tempfile

    from capsfast.bench.measure import run_child

    code = ("import time\nt = time.perf_counter_ns()\nimport capsfast\ncapsfast.capabilities()\n"
            "print(repr(((time.perf_counter_ns() - t) / 1e3,)))\n")
    warm: list[float] = []
    cold: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        warm_env = dict(b.env, XDG_CACHE_HOME=os.path.join(tmp, "warm"))
        warm_env.pop("CAPSFAST_CACHE", None)
        run_child(code, warm_env)  # fills the caches
        for run in range(b.runs):
            warm.append(run_child(code, warm_env)[0])
            cold_env = dict(b.env, XDG_CACHE_HOME=os.path.join(tmp, "cold-%d" % run), CAPSFAST_CACHE="off")
            cold.append(run_child(code, cold_env)[0])
    b.keep(Result("first_answer_cache_warm", "import capsfast + capabilities(), a fresh process, "
                  "on-disk caches warm", warm))
    b.keep(Result("first_answer_cache_cold", "import capsfast + capabilities(), a fresh process, "
                  "on-disk caches cold (none, CAPSFAST_CACHE=off)", cold))


@step("kvm-ok")
def alt_kvm_ok(b: Bench) -> None:
    _alt_process(b, "alt_kvm_ok", "kvm-ok", [], "kvm-ok, a process")


@step("virt-host-validate")
def alt_virt_host_validate(b: Bench) -> None:
    _alt_process(b, "alt_virt_host_validate", "virt-host-validate", ["qemu"], "virt-host-validate qemu, a process")


@step("a remote query over SSH (--connect)")
def remote_query(b: Bench) -> None:
    what = "probe(connect=URI): one SSH connection, the collector, the replay here"
    if b.connect is None:
        b.keep(Result("remote_query", what, [], "only with --connect URI"), alternative=True)
        return
    import capsfast

    samples: list[float] = []
    for _ in range(b.alt_runs):
        start = time.perf_counter_ns()
        capsfast.probe(connect=b.connect).guests
        samples.append((time.perf_counter_ns() - start) / 1e3)
    b.keep(Result("remote_query", what, samples), alternative=True)
    virsh = which("virsh")
    what = "virsh -c qemu+ssh://.../system capabilities, a process (the same host)"
    if virsh is None or not libvirtd_running():
        b.keep(Result("alt_virsh_ssh", what, [], "no virsh, or no libvirt daemon running"), alternative=True)
        return
    from capsfast.recording import remote

    target = remote.parse_uri(b.connect)
    query = [q for q in (("keyfile=" + target.keyfile) if target.keyfile else "",
                         ("known_hosts=" + target.known_hosts) if target.known_hosts else "",
                         "no_verify=1" if target.no_verify else "") if q]
    uri = "qemu+ssh://%s%s%s/system%s" % (target.user + "@" if target.user else "", target.host,
                                         ":%d" % target.port if target.port else "",
                                         "?" + "&".join(query) if query else "")
    virsh_samples: list[float] = []
    status = 0
    for _ in range(b.alt_runs):
        took, status = process_time([virsh, "-c", uri, "capabilities"], None)
        virsh_samples.append(took)
    b.keep(Result("alt_virsh_ssh", what, virsh_samples, "exit status %d" % status if status else None),
           alternative=True)


@step("py-cpuinfo")
def alt_py_cpuinfo(b: Bench) -> None:
    b.keep(_py_cpuinfo(b), alternative=True)


# whole processes

@step("whole processes, interleaved: python -c pass, capsfast, virsh")
def whole_processes(b: Bench) -> None:
    base = capsfast_command()
    commands = (
        ("process_python_pass", "python -c pass, a process (same interpreter)", [sys.executable, "-c", "pass"]),
        ("process_check_q", "capsfast check -q, a process", base + ["check", "-q"]),
        ("process_check_firecracker", "capsfast check -q --for firecracker, a process",
         base + ["check", "-q", "--for", "firecracker"]),
        ("process_capabilities_json", "capsfast capabilities --format json, a process",
         base + ["capabilities", "--format", "json"]),
        ("process_capabilities_libvirt", "capsfast capabilities (the default command: libvirt XML), a process",
         base + ["capabilities"]),
        ("process_capabilities_machines", "capsfast capabilities --machines, its caches warm, a process",
         base + ["capabilities", "--machines"]),
    )
    for _key, _what, argv in commands:  # every cache warm before the first sample
        process_time(argv, b.env)
    samples: dict[str, list[float]] = {key: [] for key, _what, _argv in commands}
    failed: dict[str, int] = {}
    virsh, virsh_note = _virsh_command()
    virsh_samples: list[float] = []
    virsh_status = 0
    budget_us = VIRSH_BUDGET_S[0 if b.quick else 1] * 1e6
    for _ in range(b.process_runs):
        # Interleaved, so drifts in load hit every command alike.
        for key, _what, argv in commands:
            t, status = process_time(argv, b.env)
            samples[key].append(t)
            if status and not (key.startswith("process_check") and status == 1):  # 1: check's "no"
                failed[key] = status
        if virsh is not None and sum(virsh_samples) < budget_us:
            t, virsh_status = process_time(virsh, None)
            virsh_samples.append(t)
    for key, what, _argv in commands:
        b.keep(Result(key, what, samples[key], "exit status %d" % failed[key] if key in failed else None))
    if virsh is not None:
        notes = []
        if len(virsh_samples) < b.process_runs:
            notes.append("%d of %d rounds: over its %.0f s budget" % (len(virsh_samples), b.process_runs,
                                                                       budget_us / 1e6))
        if virsh_status:
            notes.append("exit status %d" % virsh_status)
        virsh_note = "; ".join(notes) or None
    b.keep(Result("alt_virsh", "virsh -c qemu:///system capabilities, a process (interleaved with capsfast's)",
                  virsh_samples, virsh_note), alternative=True)


def _virsh_command() -> tuple[list[str] | None, str | None]:
    """virsh's capabilities command, or None and why it is not measured."""
    virsh = which("virsh")
    if virsh is None:
        return None, "virsh is not installed"
    if not libvirtd_running():
        return None, "no libvirt daemon is running; not started by the benchmark"
    return [virsh, "-c", "qemu:///system", "capabilities"], None


def _cpuinfo_parse() -> bool:
    """What a script does without capsfast: read /proc/cpuinfo whole and
    look for vmx/svm in the flags of every processor."""
    with open("/proc/cpuinfo") as f:
        text = f.read()
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            found.update(line.partition(":")[2].split())
    return "vmx" in found or "svm" in found


_DAEMONS = ("libvirtd", "virtqemud")


def libvirtd_running() -> bool:
    """Whether a libvirt daemon answers locally: its socket exists and the
    daemon runs.  A socket alone may be systemd's, which would start the
    daemon on the first connection; the benchmark never starts one."""
    sockets = ("/run/libvirt/libvirt-sock", "/var/run/libvirt/libvirt-sock",
               "/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock-ro")
    if not any(os.path.exists(sock) for sock in sockets):
        return False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() in _DAEMONS:
                    return True
        except OSError:
            continue
    return False


# libvirt-python's warm getCapabilities(), timed in whichever interpreter
# can import the binding: it prints its samples (microseconds a call) as a
# Python list, or one line saying why it could not.
_LIBVIRT_PYTHON_CHILD = r"""
import sys, time
try:
    import libvirt
except ImportError:
    print("no libvirt-python"); sys.exit(0)
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
try:
    conn = libvirt.openReadOnly("qemu:///system")
    conn.getCapabilities()
except libvirt.libvirtError as e:
    print("cannot connect: %s" % str(e).splitlines()[0]); sys.exit(0)
number, repeat = int(sys.argv[1]), int(sys.argv[2])
samples = []
for _ in range(repeat):
    t = time.perf_counter_ns()
    for _ in range(number):
        conn.getCapabilities()
    samples.append((time.perf_counter_ns() - t) / 1e3 / number)
conn.close()
print(repr(samples))
"""
# Debian's python3-libvirt serves the system interpreter only: a benchmark
# run from a venv borrows it.
_SYSTEM_PYTHON = "/usr/bin/python3"


def _pythons() -> tuple[str, ...]:
    """The interpreters tried for libvirt-python, in order."""
    return tuple(dict.fromkeys((sys.executable, _SYSTEM_PYTHON)))


def _libvirt_python(b: Bench) -> Result:
    what = "libvirt-python getCapabilities(), in-process, connection open (warm: the daemon's answer kept)"
    if not libvirtd_running():
        return Result("alt_libvirt_python", what, [], "no libvirt daemon is running; not started by the benchmark")
    import ast
    import subprocess

    for python in _pythons():
        if not os.access(python, os.X_OK):
            continue
        done = subprocess.run([python, "-c", _LIBVIRT_PYTHON_CHILD, str(3 if b.quick else 50), str(b.repeat)],
                              capture_output=True, text=True, timeout=300)
        last = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0 or not last.startswith("["):
            if last.startswith("cannot connect"):
                return Result("alt_libvirt_python", what, [], last)
            continue
        samples = ast.literal_eval(last)
        note = None if python == sys.executable else "run by %s (the binding is installed for it)" % python
        return Result("alt_libvirt_python", what, samples, note)
    return Result("alt_libvirt_python", what, [], "libvirt-python is not importable (%s)" % ", ".join(_pythons()))


def _py_cpuinfo(b: Bench) -> Result:
    what = "py-cpuinfo get_cpu_info(), in-process"
    if not b.slow:
        return Result("alt_py_cpuinfo", what, [], "only with --slow")
    try:
        import cpuinfo  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return Result("alt_py_cpuinfo", what, [], "py-cpuinfo is not importable")
    return Result("alt_py_cpuinfo", what, per_call_us(cpuinfo.get_cpu_info, 1, 1 if b.quick else 3))

"""Domain capabilities (``virsh domcapabilities``): capsfast's answer
against libvirt's, on the same host.

- cold: a fresh ``capsfast domcapabilities`` process with an empty cache,
  so the emulator is asked over QMP (libvirt's own cold probe needs a
  daemon restarted with an empty cache, which the benchmark never does);
- warm: the same process with the transcript cached, interleaved with
  ``virsh domcapabilities`` against a running daemon (which holds its
  answer in memory);
- in-process: ``capsfast.domain_capabilities()`` called again, and its first
  call in a fresh interpreter, against libvirt-python's warm
  ``getDomainCapabilities()`` on an open connection (run by the system
  ``python3``, which has the ``libvirt`` module, in a child).

Where this build has no ``domcapabilities`` command or API, or no daemon
runs, the figure is left out with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from capsfast.bench.measure import Bench, Result, capsfast_command, process_time, step, which

API = "domain_capabilities"
COMMAND = "domcapabilities"
# libvirt-python lives in the system interpreter's packages (python3-libvirt).
SYSTEM_PYTHON = "/usr/bin/python3"

_CHILD_FIRST_CALL = """
import time
import capsfast
t = time.perf_counter_ns()
capsfast.domain_capabilities()
print(repr(((time.perf_counter_ns() - t) / 1e3,)))
"""

# libvirt-python's warm call: the connection open and one answer fetched,
# then per call over a batch, printed as microseconds per call.
_CHILD_LIBVIRT_PYTHON = """
import sys, time
import libvirt
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
conn = libvirt.open("qemu:///system")  # read-only connections may not ask for domain capabilities
conn.getDomainCapabilities()
samples = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter_ns()
    for _ in range(int(sys.argv[2])):
        conn.getDomainCapabilities()
    samples.append((time.perf_counter_ns() - t) / 1e3 / int(sys.argv[2]))
conn.close()
print(repr(tuple(samples)))
"""


def has_command() -> bool:
    from capsfast.cli import COMMANDS

    return COMMAND in COMMANDS


def has_api() -> bool:
    import capsfast

    return callable(getattr(capsfast, API, None))


def libvirtd_running() -> bool:
    # Imported here: importing the alternatives registers their steps, which
    # come after these.
    from capsfast.bench.alternatives import libvirtd_running as running

    return running()


def _virsh() -> tuple[list[str] | None, str | None]:
    virsh = which("virsh")
    if virsh is None:
        return None, "virsh is not installed"
    if not libvirtd_running():
        return None, "no libvirt daemon is running; not started by the benchmark"
    return [virsh, "-c", "qemu:///system", "domcapabilities"], None


@step("domcapabilities, cold (no transcript cached)")
def domcaps_cold(b: Bench) -> None:
    what = "capsfast domcapabilities, a process, the QMP transcript not cached (QEMU asked)"
    b.keep(Result("alt_virsh_domcaps_cold", "libvirt's own cold probe (virsh domcapabilities after the daemon "
                  "restarted with an empty cache)", [], "not measured: the benchmark restarts no daemon"),
           alternative=True)
    if not has_command():
        b.keep(Result("domcaps_cold", what, [], "this build has no domcapabilities command"))
        return
    samples = []
    for _ in range(b.alt_runs):
        cache = tempfile.mkdtemp(prefix="capsfast-bench-")
        try:
            env = dict(b.env, XDG_CACHE_HOME=cache)
            took, status = process_time(capsfast_command() + [COMMAND], env)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        if status:
            b.keep(Result("domcaps_cold", what, [], "exit status %d" % status))
            return
        samples.append(took)
    b.keep(Result("domcaps_cold", what, samples))


@step("domcapabilities, warm, interleaved with virsh domcapabilities")
def domcaps_warm(b: Bench) -> None:
    what = "capsfast domcapabilities, a process, the transcript cached"
    virsh, virsh_note = _virsh()
    if not has_command():
        b.keep(Result("domcaps_warm", what, [], "this build has no domcapabilities command"))
        b.keep(Result("alt_virsh_domcaps", "virsh domcapabilities, a process", [], virsh_note or "not paired"),
               alternative=True)
        return
    command = capsfast_command() + [COMMAND]
    process_time(command, b.env)  # fills the cache, if it was empty
    ours: list[float] = []
    theirs: list[float] = []
    status = virsh_status = 0
    for _ in range(b.process_runs):
        took, status = process_time(command, b.env)
        ours.append(took)
        if virsh is not None:
            took, virsh_status = process_time(virsh, None)
            theirs.append(took)
    b.keep(Result("domcaps_warm", what, ours, "exit status %d" % status if status else None))
    b.keep(Result("alt_virsh_domcaps", "virsh -c qemu:///system domcapabilities, a process (interleaved)",
                  theirs, virsh_note or ("exit status %d" % virsh_status if virsh_status else None)),
           alternative=True)


@step("domain_capabilities() in-process, repeated and first")
def domcaps_in_process(b: Bench) -> None:
    repeated = "capsfast.domain_capabilities() called again in-process"
    first = "capsfast.domain_capabilities(), its first call in a fresh process (transcript cached)"
    if not has_api():
        b.keep(Result("domcaps_repeat", repeated, [], "this build has no capsfast.%s()" % API))
        b.keep(Result("domcaps_first", first, [], "this build has no capsfast.%s()" % API))
    else:
        import capsfast

        api = getattr(capsfast, API)
        api()
        b.keep(Result("domcaps_repeat", repeated, b.per_call(api)))
        b.keep(Result("domcaps_first", first, [float(r[0]) for r in b.children(_CHILD_FIRST_CALL)]))
    b.keep(_libvirt_python(b), alternative=True)


def _libvirt_python(b: Bench) -> Result:
    what = "libvirt-python getDomainCapabilities(), warm, connection open (system python3, a child)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return Result("alt_libvirt_python_domcaps", what, [], "no %s" % SYSTEM_PYTHON)
    if not libvirtd_running():
        return Result("alt_libvirt_python_domcaps", what, [], "no libvirt daemon is running; not started by the "
                      "benchmark")
    try:
        samples = run_child_with(SYSTEM_PYTHON, _CHILD_LIBVIRT_PYTHON, [str(b.repeat), "3" if b.quick else "20"])
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return Result("alt_libvirt_python_domcaps", what, [], str(e).splitlines()[0][:200])
    return Result("alt_libvirt_python_domcaps", what, [float(str(s)) for s in samples])


def run_child_with(python: str, code: str, args: list[str]) -> tuple[object, ...]:
    """``run_child`` under another interpreter, with arguments."""
    done = subprocess.run([python, "-c", code] + args, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError("child failed: %s" % (done.stderr.strip().splitlines() or ["?"])[-1])
    import ast

    value = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    if not isinstance(value, tuple):
        raise RuntimeError("child printed %r, not a tuple" % (value,))
    return value


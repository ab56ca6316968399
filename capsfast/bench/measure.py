"""The benchmark's measuring: ``Bench`` (how much to measure and what was
measured), the ``@step`` registry, timing in this process, in fresh
interpreters and of whole processes, and the shape of the ``--json``
document.

Each figure is the median of its runs with the lowest and highest run
beside it.  "First in a process" figures come from fresh interpreters
(``sys.executable``), each reporting its own timing, so the parent's
startup is not counted.
"""
from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    Step = Callable[["Bench"], None]

# functools pulls in collections (about 2 ms on a VM): as dear as the probe itself.
FORBIDDEN_AT_IMPORT = ("lxml", "argparse", "json", "re", "dataclasses", "typing", "threading", "functools",
                       "collections")
SCHEMA_VERSION = 1


# -- the JSON document ---------------------------------------------------------

class ResultRow(TypedDict):
    key: str
    what: str
    median_us: float | None
    low_us: float | None
    high_us: float | None
    runs: int
    note: str | None


class Target(TypedDict):
    target: str
    value: float | None
    limit: float | None
    unit: str  # "x" for a ratio, else what is counted
    met: bool | None


class Scale(TypedDict):
    file_bytes: int
    bytes_read: int
    median_us: float | None


class Machine(TypedDict):
    cpus: int | None
    kernel: str
    arch: str
    python: str
    executable: str
    cpu_model: str | None
    load_average: list[float]
    load_average_after: list[float]


class CpuidWalk(TypedDict):
    entries: int
    cpuid_instructions: int        # its entries, plus the subleaves it reads and drops
    ratio_to_one_cpuid: float | None
    run_by_first_probe: bool       # a fresh process's probe() called it, or ran more CPUIDs than its leaves


class TopologyScale(TypedDict):
    cpus: int
    rounds: int          # crossings into C, each asking for what the one before found
    files: int           # files and listings read
    median_us: float | None
    per_cpu_us: float | None


class Document(TypedDict):
    schema_version: int
    quick: bool
    machine: Machine
    import_forbidden_modules: list[str]
    cpuid_first_probe: int
    cpuid_walk: CpuidWalk
    modules_imported_by_first_probe: list[str]
    floor_first_probe_us: float | None
    kvm_caps_per_ioctl_us: float | None
    cpuinfo_scaling: dict[str, Scale]
    topology_scaling: dict[str, TopologyScale]
    alternatives: list[str]
    results: list[ResultRow]
    targets: list[Target]


def median_of(samples: Sequence[float]) -> float | None:
    s = sorted(samples)
    if not s:
        return None
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if isinstance(value, int):
        return value
    return round(value, 3) if value < 100 else round(value, 1)


class Result:
    """One measured figure: ``samples`` in microseconds."""

    __slots__ = ("key", "what", "samples", "note")

    def __init__(self, key: str, what: str, samples: Iterable[float], note: str | None = None) -> None:
        self.key = key
        self.what = what
        self.samples = sorted(samples)
        self.note = note

    @property
    def median(self) -> float | None:
        return median_of(self.samples)

    def as_dict(self) -> ResultRow:
        s = self.samples
        return {
            "key": self.key,
            "what": self.what,
            "median_us": rounded(self.median),
            "low_us": rounded(s[0]) if s else None,
            "high_us": rounded(s[-1]) if s else None,
            "runs": len(s),
            "note": self.note,
        }


# -- the steps -----------------------------------------------------------------

class Bench:
    """What the steps share: how much to measure, and what was measured."""

    def __init__(self, quick: bool, slow: bool, connect: str | None = None) -> None:
        self.quick = quick
        self.slow = slow
        self.connect = connect
        self.runs = 3 if quick else 15         # fresh interpreters per figure
        self.number = 200 if quick else 5000   # calls per sample
        self.repeat = 5 if quick else 15       # samples
        self.process_runs = 3 if quick else 20
        self.alt_runs = 1 if quick else 5
        self.env = child_env()
        self.machine = machine_facts()
        self.results: dict[str, Result] = {}
        self.alternatives: list[str] = []
        self.import_forbidden: list[str] = []
        self.cpuid_first_probe = 0
        self.walk_entries = 0
        self.walk_cpuids = 0
        self.walk_in_first_probe = False
        self.kvm_caps_per_ioctl: float | None = None
        self.lazy_modules: list[str] = []
        self.first_probe_reads_cpu_files = False
        self.scaling: dict[str, Scale] = {}
        self.topology: dict[str, TopologyScale] = {}

    def keep(self, result: Result, alternative: bool = False) -> None:
        self.results[result.key] = result
        if alternative:
            self.alternatives.append(result.key)

    def median(self, key: str) -> float | None:
        r = self.results.get(key)
        return None if r is None else r.median

    def per_call(self, fn: Callable[[], object], divisor: int = 1, at_least: int = 1,
                 times: int = 1) -> list[float]:
        """Microseconds per call of ``fn``, in batches of number * times / divisor."""
        return per_call_us(fn, max(self.number * times // divisor, at_least), self.repeat)

    def children(self, code: str) -> list[tuple[Any, ...]]:
        return [run_child(code, self.env) for _ in range(self.runs)]


STEPS: list[tuple[str, Step]] = []


def step(label: str) -> Callable[[Step], Step]:
    """Register the decorated function as the next step; ``label`` is what
    the progress display says while it runs."""
    def register(fn: Step) -> Step:
        STEPS.append((label, fn))
        return fn
    return register


def sum_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def ratio_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def per_call_us(fn: Callable[[], object], number: int, repeat: int) -> list[float]:
    """Microseconds per call, one sample per batch of ``number`` calls."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(repeat):
        t = clock()
        for _ in range(number):
            fn()
        samples.append((clock() - t) / 1e3 / number)
    return samples


def child_env() -> dict[str, str]:
    """The environment for fresh interpreters: this capsfast first on the path."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_child(code: str, env: dict[str, str]) -> tuple[Any, ...]:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError("benchmark child failed: %s" % (done.stderr.strip().splitlines() or ["?"])[-1])
    value = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    if not isinstance(value, tuple):
        raise RuntimeError("benchmark child printed %r, not a tuple" % (value,))
    return value


def process_time(argv: list[str], env: dict[str, str] | None, timeout: float = 120) -> tuple[float, int]:
    """Wall-clock microseconds of one whole process, and its exit status."""
    t = time.perf_counter_ns()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # A blocking wait: Popen.wait(timeout) polls with growing sleeps, which
    # rounds a 10 ms process up to the next poll.
    killed: list[bool] = []

    def kill() -> None:
        killed.append(True)
        child.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        status = child.wait()
    finally:
        watchdog.cancel()
    if killed:
        raise subprocess.TimeoutExpired(argv, timeout)
    return (time.perf_counter_ns() - t) / 1e3, status


def capsfast_command() -> list[str]:
    """The installed ``capsfast`` script beside this interpreter, else the
    same entry through ``python -c``."""
    script = os.path.join(os.path.dirname(sys.executable), "capsfast")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-c", "from capsfast.cli import run; run()"]


def which(name: str) -> str | None:
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts() -> Machine:
    uname = os.uname()
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    load = load_average()
    return {"cpus": os.cpu_count(), "kernel": uname.release, "arch": uname.machine,
            "python": sys.version.split()[0], "executable": sys.executable, "cpu_model": cpu_model,
            "load_average": load, "load_average_after": load}

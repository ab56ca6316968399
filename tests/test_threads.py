"""Concurrency and fork safety of the public API.

- 16 threads call probe(), probe(refresh=True), kvm_usable() and
  capabilities(format="json") (and a fake-root probe) for a few seconds:
  every answer equals the one computed alone, no exception.
- The C call runs without the GIL: the C module counts the threads inside
  capsfast_probe at once, and several are seen there together.
- os.fork() while another thread holds the probe cache's lock, or while
  threads are mid-probe: the child's first probe() answers correctly and
  does not deadlock.
"""
import json
import os
import threading
import time


from forked import HANG_GUARD, in_child

import capsfast
from capsfast import _native
from capsfast import host as probing

lib = _native.lib

THREADS = 16
SECONDS = float(os.environ.get("CAPSFAST_THREAD_SECONDS", "3"))


def fake_root(tmp_path):
    root = tmp_path / "root"
    for d in ("proc/sys/kernel", "dev/cpu/0", "sys/module/kvm_intel/parameters", "sys/hypervisor"):
        (root / d).mkdir(parents=True)
    (root / "proc/sys/kernel/arch").write_text("x86_64\n")
    (root / "proc/cpuinfo").write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: svm lm nx pae\n\n")
    (root / "sys/module/kvm_intel/parameters/nested").write_text("Y\n")
    (root / "sys/hypervisor/type").write_text("xen\n")
    (root / "dev/kvm").write_text("")
    return str(root)


def test_sixteen_threads_get_identical_answers(tmp_path):
    root = fake_root(tmp_path)
    expected = {
        "probe": capsfast.probe(refresh=True),
        "kvm_usable": capsfast.kvm_usable(),
        "json": capsfast.capabilities(format="json"),
        "root": capsfast.probe(root=root),
    }
    calls = (
        ("probe", capsfast.probe),
        ("probe", lambda: capsfast.probe(refresh=True)),
        ("kvm_usable", capsfast.kvm_usable),
        ("json", lambda: capsfast.capabilities(format="json")),
        ("root", lambda: capsfast.probe(root=root)),
    )
    stop = threading.Event()
    errors, wrong, counts = [], [], [0] * THREADS

    def worker(n):
        i = n  # each thread starts at a different call
        try:
            while not stop.is_set():
                key, call = calls[i % len(calls)]
                got = call()
                if got != expected[key]:
                    wrong.append((key, got))
                counts[n] += 1
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)  # how long to run, not an assertion
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert wrong == []
    assert all(c >= len(calls) for c in counts), counts  # every thread ran every call
    print("calls per thread: %s" % (counts,))


def fork_and_probe(child_work):
    """``child_work()`` in a forked child; fails the test if it deadlocks."""
    return in_child(child_work, hang="the child deadlocked")


def steady(host):
    """The facts of ``host`` that hold still on a running VM: its eager
    fields (a NUMA cell's memory, a lazy part, follows the balloon)."""
    return tuple(getattr(host, f) for f in host._fields if f not in host._lazy)


def steady_json(text):
    doc = json.loads(text)
    doc["host"].pop("topology", None)  # memory and 4 KiB page counts per cell
    return doc


def child_answers():
    return (steady(capsfast.probe()), steady(capsfast.probe(refresh=True)), capsfast.kvm_usable(),
            steady_json(capsfast.capabilities(format="json")))


def test_fork_while_another_thread_holds_the_cache_lock(fresh_process_state):
    expected = child_answers()
    probing.forget_live()  # the child's first probe() must take the lock
    held, release = threading.Event(), threading.Event()

    def holder():
        with probing.live_lock():
            held.set()
            release.wait()

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(HANG_GUARD)
        got = fork_and_probe(child_answers)
    finally:
        release.set()
        t.join()
    assert got == ("ok", expected)


def test_fork_while_threads_are_probing():
    """Forks taken while 4 threads probe (mid-call, mid-pool): every
    child's first probe is right."""
    expected = child_answers()
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            capsfast.probe(refresh=True)
            capsfast.probe(deep=False)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        results = [fork_and_probe(child_answers) for _ in range(20)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert results == [("ok", expected)] * 20

"""``capsfast record DIR``: this host as a replayable scenario.

Writes ``DIR/cpuid.txt`` (the leaves the probe reads, in ``cpuid -r -1``
form), ``DIR/root/`` (every file the probe read, as read; an empty regular
file for each device node, which replays as "exists, not a character
device"; directories as directories) and ``DIR/scenario.json`` (the MSR
values, which cannot be stored as a file).  The layout is the one of
``tests/hosts/<scenario>/``.
"""
import os
import stat
import time

from capsfast import _native, cpuid, devices
from capsfast.errors import CapsfastError
from capsfast.render.json import dumps


def record(directory):
    """Capture the live host into ``directory``; returns lines to print."""
    if os.path.exists(os.path.join(directory, "root")):
        raise CapsfastError("%s already holds a recording (root/ exists)" % directory)
    plan = devices.DEVICE_FILES + devices.CPU_FILES + (devices.ARCH_FILE,)
    batch = _native.Batch(devices.KVM_DEVICE, devices.batch_specs("/", plan))
    leaves, kvm_raw, results = batch.run(_native.HAS_CPUID, False)
    root = os.path.join(directory, "root")
    written = []
    try:
        os.makedirs(root)
        if kvm_raw[0] == 0:
            written.append(_placeholder(root, devices.KVM_DEVICE, kvm_raw[1]))
        msr = {}
        for (key, path, op, number, _cap), (err, mode, data, _truncated, value) in zip(plan, results):
            if err != 0:
                continue
            if op == _native.OP_MSR:
                msr["0x%x" % number] = "0x%x" % value
            elif op == _native.OP_STAT:
                written.append(_placeholder(root, path, mode))
            else:
                written.append(_write(root, path, data))
        if leaves is not None:
            with open(os.path.join(directory, "cpuid.txt"), "w") as f:
                f.write(cpuid.format_dump(leaves))
            written.append("cpuid.txt")
        scenario = {
            "description": "recorded by capsfast record on %s" % time.strftime("%Y-%m-%d"),
            "msr": msr,
        }
        with open(os.path.join(directory, "scenario.json"), "w") as f:
            f.write(dumps(scenario) + "\n")
    except OSError as e:
        raise CapsfastError("cannot write %s: %s" % (e.filename or directory, e.strerror)) from None
    from capsfast.probe import probe

    host = probe()
    return ["recorded %d files into %s (arch %s, hvm %s, kvm usable: %s)" % (
        len(written) + 1, directory, host.arch, host.hvm.status, host.kvm.usable)]


def _target(root, path):
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    return target


def _placeholder(root, path, mode):
    target = _target(root, path)
    if stat.S_ISDIR(mode):
        os.makedirs(target, exist_ok=True)
        # Git keeps no empty directory; a marker keeps the recording portable.
        open(os.path.join(target, ".present"), "w").close()
    else:
        open(target, "w").close()
    return path


def _write(root, path, data):
    with open(_target(root, path), "wb") as f:
        f.write(data)
    return path

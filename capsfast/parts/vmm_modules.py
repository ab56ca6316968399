"""The ``vmm_modules`` part of Host: whether the kernel modules a VMM wants
besides KVM's own are loaded, read when first asked."""
from capsfast.sources.base import STAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.model import Host
    from capsfast.sources.base import Entry, Source

    # Host.vmm_modules: (name, loaded: True, False, or None when it cannot be told)
    Modules = tuple[tuple[str, "bool | None"], ...]

# Kernel modules a VMM wants besides KVM's own (Kata checks them: vhost and
# vhost_net accelerate virtio devices, vhost_vsock carries its agent's
# socket); looked at when Host.vmm_modules is first read, never by a probe.
VMM_MODULES = ("vhost", "vhost_net", "vhost_vsock")
MODULE_FILES: "tuple[Entry, ...]" = tuple(("module." + m, "/sys/module/" + m, STAT, 0, 0) for m in VMM_MODULES)

NAME = "vmm_modules"
FIELDS = ("vmm_modules",)
CAPTURE: "dict[str, object]" = {"files": [list(entry) for entry in MODULE_FILES]}
# A recording made before modules were recorded cannot tell.
UNKNOWN: "dict[str, object]" = {"vmm_modules": None}


def vmm_modules(outcomes: "Sequence[str] | None") -> "Modules | None":
    """Host.vmm_modules from the outcome codes of MODULE_FILES (None: not
    recorded): a module is loaded when its /sys/module directory exists."""
    if outcomes is None:
        return None
    loaded = {"ok": True, "absent": False}
    return tuple((name, loaded.get(code)) for name, code in zip(VMM_MODULES, outcomes))


def fields(source: "Source", host: "Host") -> "dict[str, object]":
    if not source.captured(NAME):
        return UNKNOWN
    return {"vmm_modules": vmm_modules([r.outcome.code for r in source.files(MODULE_FILES)])}

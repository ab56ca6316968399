"""The parts of ``Host``, each declared once in its own module (a folder's
``__init__``, or one file when small):

- ``NAME``: the part's name (a recording lists the parts it captured);
- ``FIELDS``: the Host fields it fills;
- ``CAPTURE``: data, what a recording must keep for it (``files`` plan
  entries with their ``depends``, ``globs``, ``list_dirs``, ``access``
  checks, and what only a device tells: ``kvm_device``, ``kvm_caps``,
  ``cpuid``, ``cpu_device``, ``cpu_map``, ``emulators``);
- ``UNKNOWN``: the fields' values where the source cannot tell;
- and, in its ``read`` module (the part's own module when it is one
  file), ``fields(source, host)``: the fields' values, read through the
  source.

Inside a part, files are named the same way: ``read`` (I/O through the
source only), ``parse`` (bytes to values), ``decide`` (pure rules).  A part
never imports another part, the recording, the host or a renderer.  The
core part is read by every probe; the others when one of their fields is
first read, and only then imported.
"""
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# In the order a first read looks for a field's part: the cheap ones first.
PARTS = [
    "capsfast.parts.core",
    "capsfast.parts.guests",
    "capsfast.parts.kvm_caps",
    "capsfast.parts.vmm_modules",
    "capsfast.parts.topology",
    "capsfast.parts.platform",
    "capsfast.parts.cpu_model",
]


def part(name: str) -> "ModuleType":
    """The part declared in module ``name``, imported on first use (through
    the import system even when already there: another thread may still be
    running its module, and importing waits for that)."""
    __import__(name)
    return sys.modules[name]


def reader(declared: "ModuleType") -> "ModuleType":
    """The module whose ``fields(source, host)`` reads the part: its
    ``read`` module, or the part itself when it is one file."""
    if hasattr(declared, "__path__"):
        return part(declared.__name__ + ".read")
    return declared


def owner(field: str) -> "ModuleType":
    """The part that fills Host field ``field``; parts are imported in
    turn until one declares it."""
    for name in PARTS:
        module = part(name)
        if field in module.FIELDS:
            return module
    raise LookupError("no part fills Host.%s" % field)


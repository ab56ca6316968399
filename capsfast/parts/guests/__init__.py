"""The ``guests`` part of Host: one guest per architecture with an
emulator, as libvirt lists them (``read``: the part's reading;
``discover``: the emulators in the PATH, asked of the source; ``parse``:
names, tokens and ``-machine help`` text to values; ``decide``: libvirt's
rules; ``machines``: each emulator's machine types, on request, by running
it)."""
from capsfast.constants import DEFAULT_PATH, QEMU_KVM

PREFIX = "qemu-system-"

NAME = "guests"
FIELDS = ("guests",)
# An empty executable file for each emulator found, and the PATH searched.
CAPTURE: "dict[str, object]" = {"emulators": {"prefix": PREFIX, "qemu_kvm": QEMU_KVM, "default_path": DEFAULT_PATH}}
UNKNOWN = {"guests": ()}

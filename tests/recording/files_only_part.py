"""A part declared by a test: made of files only (the kernel's release and
the hostname), it needs nothing of capsfast but this declaration to be
recorded, replayed and fetched from a remote host."""
from capsfast.sources.base import READ

NAME = "kernel_release"
FIELDS = ("release", "hostname")
FILES = [["release", "/proc/sys/kernel/osrelease", READ, 0, 256],
         ["hostname", "/proc/sys/kernel/hostname", READ, 0, 256]]
CAPTURE = {"files": FILES}
UNKNOWN = {"release": None, "hostname": None}


def fields(source, host):
    if not source.captured(NAME):
        return UNKNOWN
    results = source.files([tuple(entry) for entry in FILES])
    return {key: result.data if result.outcome.ok else None for (key, *_), result in zip(FILES, results)}

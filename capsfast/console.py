"""Standard output and error for the commands.

A reader that leaves early (``capsfast check | true``, ``... | head``) is
not an error and never changes the exit status: what it did not read goes
nowhere.  Output that cannot be written at all (``> /dev/full``, a closed
standard output) is an error: one ``capsfast: ...`` line, exit status 2.
"""
from __future__ import annotations

import os
import sys

from capsfast.errors import CapsfastError, printable

PROG = "capsfast"


def _discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null: later writes and the
    interpreter's last flush then neither fail nor print a warning."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:  # pragma: no cover - nothing better to do
        pass


def _failed(e: OSError) -> CapsfastError:
    _discard_stdout()
    return CapsfastError("cannot write to standard output: %s" % (e.strerror or e), errno=e.errno)


def out(text: str) -> None:
    """Write ``text`` to standard output."""
    stream = sys.stdout
    if stream is None:
        raise CapsfastError("cannot write to standard output: it is closed")
    try:
        stream.write(text)
    except BrokenPipeError:
        _discard_stdout()
    except OSError as e:
        raise _failed(e) from None


def flush() -> None:
    """Flush standard output: the command's output is complete."""
    stream = sys.stdout
    if stream is None:
        return
    try:
        stream.flush()
    except BrokenPipeError:
        _discard_stdout()
    except OSError as e:
        raise _failed(e) from None


def error(message: object) -> None:
    """One ``capsfast: ...`` line on standard error (control characters
    escaped, so it stays one line)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write("%s: %s\n" % (PROG, printable(str(message))))
        stream.flush()
    except OSError:
        pass

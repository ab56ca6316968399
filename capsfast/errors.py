"""The one exception capsfast raises for bad input or an unexpected failure."""
import os


class CapsfastError(OSError):
    """Bad input (a malformed dump, an unreadable file, a root that is not
    there) or an unexpected failure.  Its message is one line, fit to print
    after ``capsfast: ``.  Absent or inaccessible devices are data, not errors.

    ``CapsfastError(message, errno=e.errno)``: where an OS error caused it,
    ``errno`` and ``strerror`` are that error's, so callers can tell ENOENT
    from EACCES without parsing the message; both are None otherwise."""

    def __init__(self, message: str, *, errno: "int | None" = None) -> None:
        # OSError(errno, strerror) would print "[Errno N] ..."; the message
        # stays the whole text and the numbers ride along as attributes.
        super().__init__(message)
        self.errno = errno
        self.strerror = None if errno is None else os.strerror(errno)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> "tuple[type[CapsfastError], tuple[str], dict[str, object]]":
        # Pickling (multiprocessing) rebuilds from args alone, which would
        # drop the errno: carry it as state, set back as attributes.
        return type(self), (str(self.args[0]),), {"errno": self.errno, "strerror": self.strerror}


def printable(text: str) -> str:
    """``text`` with control characters (from a path or value the user
    gave) escaped, so an error stays one line and drives no terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)

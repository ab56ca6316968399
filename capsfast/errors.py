"""The one exception capsfast raises for bad input or an unexpected failure."""


class CapsfastError(OSError):
    """Bad input (a malformed dump, an unreadable file, a root that is not
    there) or an unexpected failure.  Its message is one line, fit to print
    after ``capsfast: ``.  Absent or inaccessible devices are data, not errors."""


def printable(text):
    """``text`` with control characters (from a path or value the user
    gave) escaped, so an error stays one line and drives no terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)

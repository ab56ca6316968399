"""The one exception capsfast raises for bad input or an unexpected failure."""


class CapsfastError(OSError):
    """Bad input (a malformed dump, an unreadable file, a root that is not
    there) or an unexpected failure.  Its message is one line, fit to print
    after ``capsfast: ``.  Absent or inaccessible devices are data, not errors."""

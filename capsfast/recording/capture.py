"""The capture plan: what a recording keeps, the union of every part's
``CAPTURE`` (``capsfast.parts``), for ``capsfast record`` and ``--connect``
alike (the collector runs it)."""
from capsfast import parts
from capsfast.constants import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def plan(description: str, deep: bool = False) -> "dict[str, Any]":
    """The plan for a recording described as ``description``: each part's
    capture, lists joined in part order without repeats and mappings
    merged, with the parts' names as ``captured`` (a replay answers
    "unknown" for a part its recording did not capture)."""
    joined: "dict[str, Any]" = {}
    names = []
    for name in parts.PARTS:
        part = parts.part(name)
        names.append(part.NAME)
        for key, value in part.CAPTURE.items():
            if isinstance(value, list):
                have = joined.setdefault(key, [])
                have.extend(v for v in value if v not in have)
            elif isinstance(value, dict):
                joined.setdefault(key, {}).update(value)
            else:
                joined[key] = value
    joined.update(capsfast=__version__, description=description, deep=deep, captured=names)
    return joined

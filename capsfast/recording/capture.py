"""The capture plan: what a recording keeps, the union of every part's
``CAPTURE`` (``capsfast.parts``), for ``capsfast record`` and ``--connect``
alike (the collector runs it)."""
from capsfast import parts
from capsfast.constants import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DOMCAPS = "capsfast.parts.domcaps"


def plan(description: str, deep: bool = False, domcaps: bool = False,
         emulator: "str | None" = None) -> "dict[str, Any]":
    """The plan for a recording described as ``description``: each part's
    capture, lists joined in part order without repeats and mappings
    merged, with the parts' names as ``captured`` (a replay answers
    "unknown" for a part its recording did not capture).  ``domcaps``
    adds what domain capabilities need: QEMU's answers (``qmp``: the
    conversation with ``emulator``, default the host architecture's own),
    which cost an emulator run, so only when asked."""
    joined: "dict[str, Any]" = {}
    names = []
    declared = [parts.part(name) for name in parts.PARTS]
    if domcaps and DOMCAPS not in parts.PARTS:  # a part of every plan, once it declares its capture
        declared.append(parts.part(DOMCAPS))
    for part in declared:
        capture = getattr(part, "CAPTURE", {})
        if hasattr(part, "NAME"):
            names.append(part.NAME)
        for key, value in capture.items():
            if isinstance(value, list):
                have = joined.setdefault(key, [])
                have.extend(v for v in value if v not in have)
            elif isinstance(value, dict):
                joined.setdefault(key, {}).update(value)
            else:
                joined[key] = value
    if domcaps:
        joined["qmp"] = qmp_plan(emulator)
    joined.update(capsfast=__version__, description=description, deep=deep, captured=names)
    return joined


def qmp_plan(emulator: "str | None" = None) -> "dict[str, Any]":
    """The collector's ``qmp`` step: which emulator to ask (``emulator``,
    else the host architecture's ``qemu-system-<target>``, else qemu-kvm),
    within what time."""
    from capsfast.constants import QEMU_KVM
    from capsfast.parts.domcaps import qmp
    from capsfast.parts.guests.decide import QEMU_TARGET

    return {"emulator": emulator, "targets": dict(QEMU_TARGET), "qemu_kvm": QEMU_KVM,
            "timeout": qmp.DEFAULT_TIMEOUT}

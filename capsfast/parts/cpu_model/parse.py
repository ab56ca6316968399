"""Parsing the ``cpu_model`` part's text (pure): the first /proc/cpuinfo
block's ``microcode`` and ``address sizes``, as libvirt reads them.  The
CPUID walk is decoded against the CPU map by ``capsfast.cpu_map``.
"""


def cpuinfo_facts(text: str) -> "tuple[int | None, int | None]":
    """(microcode, physical address bits) as libvirt reads them: the first
    ``microcode`` value (strtoul base 0; 0 means unknown) and the first
    ``address sizes`` number."""
    microcode = bits = None
    at = text.find("microcode")
    if at >= 0:
        colon = text.find(":", at)
        if colon >= 0:
            words = text[colon + 1:].split(None, 1)
            word = words[0] if words else ""
            try:
                value = int(word[2:], 16) if word[:2].lower() == "0x" else int(word, 10)
            except ValueError:
                value = 0
            microcode = value if 0 < value < 1 << 32 else None
    for line in text.splitlines():
        if line.startswith("address sizes"):
            colon = line.find(":")
            digits = line[colon + 1:].lstrip() if colon >= 0 else ""
            end = 0
            while end < len(digits) and digits[end].isdigit():
                end += 1
            if end and int(digits[:end]) < 1 << 32:
                bits = int(digits[:end])
            break
    return microcode, bits

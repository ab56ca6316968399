"""QMP transcripts in libvirt's .replies format: libvirt's own files read
and written back byte for byte; hostile text is one CapsfastError."""
import glob
import os

import pytest

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import parse


def test_libvirt_x86_64_replies_round_trip(libvirt_src):
    files = sorted(glob.glob(os.path.join(libvirt_src, "tests", "qemucapabilitiesdata", "caps_*.x86_64.replies")))
    assert len(files) >= 11
    for path in files:
        text = open(path).read()
        transcript = parse.transcript(text)
        # the KVM process and the TCG-only one libvirt starts after it
        assert len(transcript.processes) == 2, path
        assert transcript.value("query-target")["arch"] == "x86_64"
        assert parse.transcript_text(transcript) == text, path


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000,
    '{"execute": "qmp_capabilities"}',
    '{"execute": "x"}\n\n{"id": 1}',
    "{nope",
    "[1]\n\n[2]",
])
def test_hostile_transcripts_are_one_error(text):
    with pytest.raises(CapsfastError):
        parse.transcript(text)

"""atheris harness: the command line (capsfast.cli.main).

Any argument list: an exit status 0, 1 or 2, never an exception; status 2
with a message is one ``capsfast: `` line.  ``record`` is left out (it
writes where it is told).  Runs in a scratch directory, which must stay
empty.  Run: python3 fuzz/fuzz_cli.py -max_total_time=600
"""
import contextlib
import io
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from capsfast import cli  # noqa: F401 - instrumented
    from capsfast.cli import options as cmdline

WORDS = ["capabilities", "check", "--format", "json", "libvirt", "draft", "--root", "/", "--cpuid-dump",
         "--arch", "x86_64", "aarch64", "--deep", "--json", "-q", "--quiet", "-h", "--help", "--version",
         "--", "-", "--format=json", "--root=", "--arch=", "--deep=1", "/nonexistent", "."]
SCRATCH = tempfile.mkdtemp(prefix="capsfast-fuzz-cli-")
os.chdir(SCRATCH)


def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    args = []
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        if fdp.ConsumeBool():
            args.append(fdp.PickValueInList(WORDS))
        else:
            args.append(fdp.ConsumeUnicodeNoSurrogates(24).replace("\0", ""))  # argv has no NULs
    if args[:1] == ["record"]:
        args = args[1:]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(args)
    assert status in (0, 1, 2), (args, status)
    text = err.getvalue()
    if status == 2 and text and not text.startswith("usage:"):
        lines = text.splitlines()
        assert len(lines) == 1 and lines[0].startswith("capsfast: "), (args, text)
    assert not os.listdir(SCRATCH), (args, os.listdir(SCRATCH))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

"""``capsfast bench``: what a probe costs on this host, against the floor
(CPUID and the probe's own syscalls, measured in the same run) and against
what a user would otherwise run.

The benchmark is a list of steps, registered in order with ``@step`` (as
archspec registers its ``@detection`` functions): capsfast's own
(``steps``), then the alternatives (``alternatives``); each measures one
thing and keeps its results in the ``Bench`` they share (``measure``);
``run()`` walks the list, the progress display counts the same list, and
``report`` turns the results into the document, the targets and the text.
Nothing here asserts a time: the targets are printed with the measured
values, and ``--fail-on-missed`` makes a missed one the exit status.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

# Each registers its steps on import: capsfast's own first, domain
# capabilities (capsfast's against libvirt's), then the alternatives.
from capsfast.bench import steps  # noqa: F401
from capsfast.bench import recordings  # noqa: F401
from capsfast.bench import domcaps  # noqa: F401
from capsfast.bench import alternatives  # noqa: F401
from capsfast.bench.measure import STEPS, Bench, load_average
from capsfast.bench.report import document, format_text
from capsfast.cli.options import Option, error, format_options, out, parse_or_help

if TYPE_CHECKING:
    from collections.abc import Sequence

    from capsfast.bench.measure import Document

OPTIONS = format_options(("text", "json"), "text") + (
    Option(("--quick",), "few runs (a smoke test; the figures are rough)"),
    Option(("--slow",), "also measure py-cpuinfo (about a second per run)"),
    Option(("--connect",), "also measure a remote query of this host over SSH (and virsh over "
           "qemu+ssh where a libvirt daemon answers there); the benchmark starts no sshd", metavar="URI"),
    Option(("--fail-on-missed",), "exit with status 1 when a target is MISSED (the report is printed "
           "all the same), so CI can gate on the targets"),
)
SUMMARY = (
    "Measure probe latency on this host: import, first and repeated probes,\n"
    "rendering, the floor (CPUID, syscalls) and the alternatives present here.\n"
    "On a terminal, a progress line on stderr names the step running.  Exit status:\n"
    "0 done (with --fail-on-missed: and every target met), 1 a target missed\n"
    "(only with --fail-on-missed), 2 bad usage or a measurement that failed."
)


def run(quick: bool = False, slow: bool = False, progress: Progress | None = None,
        connect: str | None = None) -> Document:
    """Every step in order; all measurements as the ``--json`` document."""
    b = Bench(quick, slow, connect)
    progress = progress or Progress(len(STEPS))
    for label, measure in STEPS:
        progress.step(label)
        measure(b)
    b.machine["load_average_after"] = load_average()
    return document(b)


# -- helpers -------------------------------------------------------------------

class Progress:
    """One rewritten line on stderr, only when it is a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.on = sys.stderr is not None and sys.stderr.isatty()

    def step(self, text: str) -> None:
        self.done += 1
        if self.on:
            sys.stderr.write("\r\033[Kcapsfast bench [%d/%d] %s" % (self.done, self.total, text))
            sys.stderr.flush()

    def end(self) -> None:
        if self.on:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def main(argv: Sequence[str]) -> int:
    values = parse_or_help("capsfast bench", OPTIONS, (), argv, SUMMARY)
    if values is None:
        return 0
    progress = Progress(len(STEPS))
    try:
        doc = run(quick=bool(values["quick"]), slow=bool(values["slow"]), progress=progress,
                  connect=None if values["connect"] is None else str(values["connect"]))
    except (RuntimeError, subprocess.SubprocessError) as e:
        error("bench: %s" % e)
        return 2
    finally:
        progress.end()
    # bench is not on the start-up path: the standard json module serves.
    out(json.dumps(doc, indent=2) + "\n" if values["format"] == "json" else format_text(doc))
    status = exit_status(doc, bool(values["fail_on_missed"]))
    if status:
        error("bench: %d of %d targets missed: %s" % (len(missed(doc)), len(doc["targets"]), "; ".join(missed(doc))))
    return status


def missed(doc: Document) -> list[str]:
    """The targets of a run that were measured and not met."""
    return [t["target"] for t in doc["targets"] if t["met"] is False]


def exit_status(doc: Document, fail_on_missed: bool) -> int:
    """1 where a target was missed and that should fail the run, else 0;
    a target that could not be measured here (n/a) is not a miss."""
    return 1 if fail_on_missed and missed(doc) else 0

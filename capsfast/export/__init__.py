"""``capsfast export {nfd,prometheus,ansible}``: the host in the formats
fleet tools read, written atomically, optionally kept fresh.

Each format is a pure module (Host -> text): ``nfd`` (Node Feature
Discovery feature file, hence Kubernetes node labels), ``prometheus``
(node_exporter textfile) and ``ansible`` (a facts.d fact).  This module
parses the command line, probes, and writes with ``atomic.write``;
``every`` keeps a file fresh.
"""
import os
import sys
import time

from capsfast.argv import Option, UsageError, parse, usage
from capsfast.errors import printable

PROG = "capsfast export"
FORMATS = ("nfd", "prometheus", "ansible")

EVERY_OPTION = Option(
    ("--every",), "stay running: probe again every SECONDS and rewrite the file when "
    "its content changes; stop cleanly on SIGTERM", metavar="SECONDS",
)

# With --every, NFD drops the labels this many beats after the last write
# unless rewritten, so a node whose exporter died loses them; the file is
# rewritten, changed or not, once half of that time has gone.
EXPIRY_BEATS = 10


def _input_options():
    from capsfast.cli import INPUT_OPTIONS

    return INPUT_OPTIONS


def _options(fmt):
    if fmt == "nfd":
        from capsfast.export import nfd

        return _input_options() + (
            Option(("--dir",), "the NFD features directory (default %s)" % nfd.DEFAULT_DIR,
                   metavar="DIR", default=nfd.DEFAULT_DIR),
            Option(("--prefix",), "the label namespace (default %s)" % nfd.DEFAULT_NAMESPACE,
                   metavar="NAMESPACE", default=nfd.DEFAULT_NAMESPACE),
            Option(("--stdout",), "print the file instead of writing it"),
            EVERY_OPTION,
        )
    if fmt == "prometheus":
        return _input_options() + (
            Option(("--file",), "write this .prom file (for node_exporter's textfile "
                   "collector) instead of printing", metavar="FILE"),
            EVERY_OPTION,
        )
    from capsfast.export import ansible

    return _input_options() + (
        Option(("--install",), "write an executable %s that prints this JSON, "
               "so ansible_local.capsfast appears" % ansible.FACT_NAME),
        Option(("--dir",), "where --install writes (default %s)" % ansible.DEFAULT_DIR,
               metavar="DIR", default=ansible.DEFAULT_DIR),
    )


_SUMMARIES = {
    "nfd": "Write the host's capabilities as Node Feature Discovery labels\n"
           "(DIR/capsfast, one namespace/name=value a line).",
    "prometheus": "Print (or write to FILE) the host's capabilities as Prometheus metrics\n"
                  "in node_exporter's textfile format.",
    "ansible": "Print the host's capabilities as the JSON of an Ansible facts.d fact,\n"
               "or install a fact that does (ansible_local.capsfast).",
}


def _usage():
    return (
        "usage: %s {nfd,prometheus,ansible} [options]\n\n"
        "Feed fleet tools: Kubernetes node labels through NFD, Prometheus through\n"
        "node_exporter's textfile collector, Ansible through a facts.d fact.\n"
        "'%s FORMAT --help' describes each.\n" % (PROG, PROG)
    )


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not (0 < value < 1e9):
        raise UsageError("--every needs a positive number of seconds, not %r" % text)
    return value


def _prober(values):
    """A function returning (host, seconds it took); the live host is probed
    afresh on each call (``refresh=True``)."""
    from capsfast.probe import probe

    live = values["root"] == "/" and values["cpuid_dump"] is None and values["arch"] is None

    def run():
        start = time.perf_counter()
        if live and not values["deep"]:
            host = probe(refresh=True)
        else:
            host = probe(root=values["root"], cpuid=values["cpuid_dump"],
                         arch=values["arch"], deep=values["deep"])
        return host, time.perf_counter() - start

    return run


def _input_args(values):
    """The input flags as given, for the installed fact to repeat."""
    args = []
    if values["root"] != "/":
        args += ["--root", os.path.abspath(values["root"])]
    if values["cpuid_dump"] is not None:
        args += ["--cpuid-dump", os.path.abspath(values["cpuid_dump"])]
    if values["arch"] is not None:
        args += ["--arch", values["arch"]]
    if values["deep"]:
        args.append("--deep")
    return args


def _report(error):
    sys.stderr.write("capsfast: %s\n" % printable(str(error)))
    sys.stderr.flush()


def _keep_fresh(interval, path, make, refresh_after=None):
    """The ``--every`` loop: ``make()`` gives (facts, text); the file is
    rewritten when the facts differ from the last written, or
    ``refresh_after`` seconds after the last write; otherwise only its
    modification time is touched, which tells it is alive."""
    from capsfast.export import atomic, every

    state = {"facts": None, "written": None}

    def step():
        facts, text = make()
        now = time.monotonic()
        stale = state["written"] is not None and refresh_after is not None and now - state["written"] >= refresh_after
        if facts != state["facts"] or stale:
            atomic.write(path, text)
            state["facts"], state["written"] = facts, now
        else:
            try:
                os.utime(path)
            except FileNotFoundError:  # someone removed it: write it again
                atomic.write(path, text)
            except OSError as e:
                _report("cannot touch %s: %s" % (path, e.strerror))

    every.run(interval, step, _report)
    return 0


def _nfd(values, probe):
    from capsfast.export import atomic, nfd

    namespace = values["prefix"]
    if not nfd.valid_namespace(namespace):
        raise UsageError("--prefix %r is not a DNS subdomain (lowercase a-z, 0-9, '-', '.')" % namespace)
    if nfd.nfd_denies(namespace):
        raise UsageError("--prefix %r: nfd-worker refuses labels under kubernetes.io and k8s.io "
                         "(except feature.node.kubernetes.io)" % namespace)
    interval = values["every"]
    if interval is None:
        text = nfd.render(probe()[0], namespace)
        if values["stdout"]:
            sys.stdout.write(text)
        else:
            atomic.write(os.path.join(values["dir"], nfd.FILE_NAME), text)
        return 0
    if values["stdout"]:
        raise UsageError("--every writes the file; it cannot be combined with --stdout")
    lifetime = interval * EXPIRY_BEATS

    def make():
        host = probe()[0]
        # NFD's stamp has whole seconds: round up, or a short lifetime
        # could be written already past.
        expiry = time.gmtime(-(-(time.time() + lifetime) // 1))
        return nfd.render(host, namespace), nfd.render(host, namespace, expiry)

    return _keep_fresh(interval, os.path.join(values["dir"], nfd.FILE_NAME), make, lifetime / 2)


def _prometheus(values, probe):
    from capsfast.export import atomic, prometheus

    path, interval = values["file"], values["every"]
    if interval is None:
        host, seconds = probe()
        text = prometheus.render(host, seconds)
        if path is None:
            sys.stdout.write(text)
        else:
            atomic.write(path, text)
        return 0
    if path is None:
        raise UsageError("--every needs --file: there is no file to keep fresh")

    def make():
        host, seconds = probe()
        return prometheus.render(host), prometheus.render(host, seconds)

    return _keep_fresh(interval, path, make)


def _ansible(values, probe):
    from capsfast.export import ansible, atomic

    if values["install"]:
        script = ansible.fact_script(sys.executable, _input_args(values))
        path = os.path.join(values["dir"], ansible.FACT_NAME)
        atomic.write(path, script, mode=0o755)
        sys.stdout.write("installed %s\n" % path)
        return 0
    sys.stdout.write(ansible.render(probe()[0]))
    return 0


_RUN = {"nfd": _nfd, "prometheus": _prometheus, "ansible": _ansible}


def main(argv):
    """``capsfast export FORMAT [options]``; returns the exit status.
    Raises UsageError or CapsfastError for the CLI to print."""
    args = list(argv)
    if not args:
        sys.stderr.write(_usage())
        return 2
    if args[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0
    fmt = args.pop(0)
    if fmt not in FORMATS:
        raise UsageError("unknown export format %r (choose from %s)" % (fmt, ", ".join(FORMATS)))
    options = _options(fmt)
    values = parse(options, (), args)
    if values["help"]:
        sys.stdout.write(usage("%s %s" % (PROG, fmt), options, (), _SUMMARIES[fmt]))
        return 0
    if values.get("every") is not None:
        values["every"] = _seconds(values["every"])
    return _RUN[fmt](values, _prober(values))

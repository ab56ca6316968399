"""``capsfast watch``: one line per change of the host's facts, until
SIGTERM or SIGINT, or until the reader of its output goes away."""
from capsfast.cli.options import INPUT_OPTIONS, PROG, Option, flush, format_options, local_inputs, out, \
    parse_or_help, reader_left, seconds_option


def main(argv: list[str]) -> int:
    summary = (
        "Stay running and print one line per change of the host's facts, as it happens: device\n"
        "nodes coming and going or changing mode (inotify), modules loaded and unloaded (kernel\n"
        "uevents), and a safety re-probe for what sends no event (module parameters).  Text:\n"
        "'TIME path: old -> new'; --format json: one JSON object a line.  SIGTERM or SIGINT stops\n"
        "it (exit status 0), and so does its reader going away (capsfast watch | head -1)."
    )
    safety = Option(("--safety",), "re-probe after SECONDS without an event (default 60; more than 0, less "
                    "than 1e9)", metavar="SECONDS",
                    default="60")
    # Watch follows this host or a root on it, and reports changes of the
    # facts it reads: no recording, remote host or CPU map to name.
    local = tuple(o for o in INPUT_OPTIONS if o.dest not in ("replay", "connect", "cpu_map"))
    options = local + format_options(("text", "json"), "text") + (safety,)
    values = parse_or_help("%s watch" % PROG, options, (), argv, summary)
    if values is None:
        return 0
    seconds = seconds_option("--safety", values["safety"])
    import json
    import sys
    import time

    from capsfast import watch
    from capsfast.cli import long_running

    long_running()
    as_json = values["format"] == "json"
    # Standard output's hang-up ends the watch: a reader that went away
    # (``capsfast watch | head -1``) is not waited for until the next change.
    try:
        hangup: "int | None" = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # closed, or not a file (in-process callers)
        hangup = None
    with watch.SignalStop() as stop:
        with watch.changes(**local_inputs(values), safety=seconds, stop=stop, hangup=hangup) as watcher:
            for _host, changed in watcher:
                now = time.time()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000)
                if as_json:
                    out(json.dumps({"time": stamp, "changes": [{"path": p, "old": o, "new": n}
                                                               for p, o, n in changed]},
                                   separators=(",", ":")) + "\n")
                else:
                    out("".join("%s %s: %s -> %s\n" % (stamp, p, json.dumps(o), json.dumps(n))
                                for p, o, n in changed))
                flush()
                if reader_left():
                    break
    return 0

"""The command line's parts, shared by ``capsfast`` and ``capsfast export``:
a small table-driven parser, the options every command shares, one
subcommand dispatcher, and the commands' output.

argparse costs about 8 ms to import on a VM (it pulls in ``re`` and
``gettext``), as much as the rest of ``capsfast check`` together, so the
CLI parses its few flags with this instead.  ``Option`` rows describe the
flags; ``parse`` fills a dict; ``UsageError`` carries a one-line message.

Output: a reader that leaves early (``capsfast check | true``, ``... |
head``) is not an error and never changes the exit status; what it did not
read goes nowhere.  Output that cannot be written at all (``> /dev/full``,
a closed standard output) is an error: one ``capsfast: ...`` line, exit
status 2.
"""
import os
import sys

from capsfast.errors import CapsfastError, printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from capsfast.model import Host

    Values = dict[str, object]
    # name -> (run it with the remaining arguments, one line of help)
    Commands = Mapping[str, tuple[Callable[[list[str]], int], str]]


PROG = "capsfast"
GIVEN = "given"  # the key of parse()'s answer that holds the flags given


class UsageError(Exception):
    """A wrong flag or value: one line, exit status 2."""


class Option:
    """One flag.  ``metavar`` None makes a switch; a switch with ``const``
    stores that value in ``dest`` (``--json`` is ``--format json``); an
    option with ``many`` may be given again and collects a list; ``once``
    is said where one without is given twice."""

    __slots__ = ("flags", "dest", "metavar", "choices", "help", "default", "const", "many", "once")

    def __init__(self, flags: tuple[str, ...], help: str, metavar: "str | None" = None,
                 choices: "tuple[str, ...] | None" = None, default: object = None,
                 dest: "str | None" = None, const: object = None, many: bool = False,
                 once: "str | None" = None) -> None:
        self.flags = flags
        self.dest = dest or flags[-1].lstrip("-").replace("-", "_")
        self.metavar = metavar
        self.choices = choices
        self.help = help
        self.const = True if const is None else const
        self.many = many
        self.once = once  # said when the option is given twice
        self.default = default if metavar is not None or const is not None else False


CONNECT_HELP = ("a remote host over SSH: ssh://[user@]host[:port] or qemu+ssh://[user@]host[:port]/system "
                "(nothing but python3 needed there)")

INPUT_OPTIONS = (
    Option(("--root",), "probe the host whose files are under DIR (default /)", metavar="DIR", default="/"),
    Option(("--cpuid-dump",), "CPU facts from a 'cpuid -r -1' dump instead of the live CPU", metavar="FILE"),
    Option(("--arch",), "the host architecture (default: DIR/proc/sys/kernel/arch, else this machine's)",
           metavar="ARCH"),
    Option(("--deep",), "also create a VM with KVM_CREATE_VM (costs hundreds of microseconds)"),
    Option(("--replay",), "the host a recording captured (capsfast record DIR, or - for a tar stream "
           "on stdin)", metavar="DIR"),
    Option(("--connect",), CONNECT_HELP, metavar="URI", once="'capsfast capabilities' takes several"),
    Option(("--cpu-map",), "libvirt's CPU map to name the host CPU with (default $CAPSFAST_CPU_MAP, else "
           "the host's /usr/share/libvirt/cpu_map)", metavar="DIR"),
)


def format_options(choices: tuple[str, ...], default: str) -> "tuple[Option, Option]":
    """``--format`` and its ``--json`` spelling, for a command that prints JSON."""
    return (
        Option(("--format",), "output format (default %s)" % default, metavar="FORMAT",
               choices=choices, default=default),
        Option(("--json",), "the same as --format json", dest="format", const="json"),
    )


def parse(options: "Sequence[Option]", positionals: "Sequence[str]", argv: "Sequence[str]") -> "Values":
    """``argv`` against the ``options`` table and the names of the required
    ``positionals``.  Returns a dict with every dest, ``help`` True when
    -h/--help was given, and under ``GIVEN`` the flags given, by dest.
    An option given twice, or two spellings of one (``--json`` and
    ``--format``), is bad usage unless it collects a list: the last one
    never silently wins.  Raises UsageError."""
    by_flag = {flag: opt for opt in options for flag in opt.flags}
    values: Values = {}
    for opt in options:
        values.setdefault(opt.dest, [] if opt.many else opt.default)
    values["help"] = False
    given: dict[str, str] = {}
    values[GIVEN] = given
    rest: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            values["help"] = True
            continue
        if arg == "--":
            rest.extend(args)
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            continue
        name, eq, inline = arg.partition("=")
        found = by_flag.get(name)
        if found is None:
            raise UsageError("unrecognised option %r" % name)
        opt = found
        if opt.dest in given and not opt.many:
            earlier = given[opt.dest]
            raise UsageError("%s given twice: give it once%s" % (name, " (%s)" % opt.once if opt.once else "")
                             if earlier == name else "%s and %s say the same thing: give one of them"
                             % (earlier, name))
        given[opt.dest] = name
        if opt.metavar is None:
            if eq:
                raise UsageError("option %s takes no value" % name)
            values[opt.dest] = opt.const
            continue
        if eq:
            value = inline
        elif args:
            value = args.pop(0)
        else:
            raise UsageError("option %s needs a value (%s)" % (name, opt.metavar))
        if opt.choices is not None and value not in opt.choices:
            raise UsageError(
                "option %s: %r is not one of %s" % (name, value, ", ".join(opt.choices))
            )
        if opt.many:
            collected = values[opt.dest]
            assert isinstance(collected, list)
            collected.append(value)
        else:
            values[opt.dest] = value
    if values["help"]:
        return values
    if len(rest) > len(positionals):
        raise UsageError("unexpected argument %r" % rest[len(positionals)])
    if len(rest) < len(positionals):
        raise UsageError("missing argument %s" % positionals[len(rest)])
    values.update(zip(positionals, rest))
    return values


def parse_or_help(prog: str, options: "Sequence[Option]", positionals: "Sequence[str]",
                  argv: "Sequence[str]", summary: str) -> "Values | None":
    """Parsed values, or None after printing the help.  The input options'
    rules (``INPUT_RULES``) hold for every command that takes them."""
    values = parse(options, positionals, argv)
    if values["help"]:
        out(usage(prog, options, positionals, summary))
        return None
    _input_rules(values)
    return values


# What the help of a command with the input options says of them.
INPUT_RULES = ("a recording (--replay) or a remote host (--connect) brings its own root, CPUID and "
               "architecture: neither takes --root, --cpuid-dump or --arch, nor the other")


def _input_rules(values: "Values") -> None:
    given = was_given(values)
    brought = [flag for dest, flag in given.items() if dest in ("replay", "connect")]
    if not brought:
        return
    if len(brought) > 1:
        raise UsageError("replay a recording or connect to a host, not both (%s)" % " and ".join(brought))
    others = [flag for dest, flag in given.items() if dest in ("root", "cpuid_dump", "arch")]
    if others:
        raise UsageError("%s brings its own root, CPUID and architecture: it takes no %s"
                         % (brought[0], " or ".join(others)))


def was_given(values: "Values") -> "dict[str, str]":
    """The options given on the command line: {dest: the flag as given}."""
    given = values.get(GIVEN)
    assert isinstance(given, dict)
    return given


def usage(prog: str, options: "Sequence[Option]", positionals: "Sequence[str]", summary: str) -> str:
    """The help text for one command."""
    line = " ".join([prog] + ["[%s]" % _flag_text(o) for o in options] + list(positionals))
    rows = [(_flag_text(o), o.help) for o in options] + [("-h, --help", "show this help")]
    width = max(len(r[0]) for r in rows)
    body = "\n".join("  %s  %s" % (left.ljust(width), right) for left, right in rows)
    many = [o.flags[-1] for o in options if o.many]
    rules = ["Each option is given once%s." % (" (%s may be given again)" % ", ".join(many) if many else "")]
    if any(o.dest == "replay" for o in options):
        rules.append(INPUT_RULES[0].upper() + INPUT_RULES[1:] + ".")
    return "usage: %s\n\n%s\n\noptions:\n%s\n\n%s\n" % (line, summary, body, _wrap(" ".join(rules)))


def _wrap(text: str, width: int = 92) -> str:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _flag_text(opt: "Option") -> str:
    text = ", ".join(opt.flags)
    if opt.metavar is not None:
        text += " " + (("{" + ",".join(opt.choices) + "}") if opt.choices else opt.metavar)
    return text


def dispatch(prog: str, commands: "Commands", argv: "Sequence[str]", summary: str, what: str = "command") -> int:
    """Run the subcommand ``argv[0]`` names; its exit status.  No
    subcommand prints the usage on stderr (status 2); -h/--help on stdout."""
    args = list(argv)
    entry = commands.get(args[0]) if args else None
    if entry is not None:
        return entry[0](args[1:])
    if args and args[0] not in ("-h", "--help"):
        raise UsageError("unknown %s %r (see '%s --help')" % (what, args[0], prog))
    width = max(len(name) for name in commands)
    rows = "\n".join("  %s  %s" % (name.ljust(width), text) for name, (_run, text) in commands.items())
    text = "usage: %s %s [options]\n\n%s\n\n%ss:\n%s\n\n'%s %s --help' describes each.\n" % (
        prog, what.upper(), summary, what, rows, prog, what.upper())
    if args:
        out(text)
        return 0
    if sys.stderr is not None:
        sys.stderr.write(text)
    return 2


# -- output -----------------------------------------------------------------------


_READER = {"left": False}  # set once standard output's reader went away


def reader_left() -> bool:
    """Whether the reader of standard output went away (a broken pipe): a
    command that would go on printing can stop."""
    return _READER["left"]


def _discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null: later writes and the
    interpreter's last flush then neither fail nor print a warning."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:  # pragma: no cover - nothing better to do
        pass


def output_failed(e: OSError) -> CapsfastError:
    """The error to raise where standard output failed (``e``); it is
    pointed at /dev/null, so nothing more fails or warns at exit."""
    _discard_stdout()
    return CapsfastError("cannot write to standard output: %s" % (e.strerror or e), errno=e.errno)


def out(text: str) -> None:
    """Write ``text`` to standard output."""
    stream = sys.stdout
    if stream is None:
        raise CapsfastError("cannot write to standard output: it is closed")
    try:
        stream.write(text)
    except BrokenPipeError:
        _READER["left"] = True
        _discard_stdout()
    except OSError as e:
        raise output_failed(e) from None


def flush() -> None:
    """Flush standard output: the command's output is complete."""
    stream = sys.stdout
    if stream is None:
        return
    try:
        stream.flush()
    except BrokenPipeError:
        _READER["left"] = True
        _discard_stdout()
    except OSError as e:
        raise output_failed(e) from None


def error(message: object) -> None:
    """One ``capsfast: ...`` line on standard error (control characters
    escaped, so it stays one line)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write("%s: %s\n" % (PROG, printable(str(message))))
        stream.flush()
    except OSError:
        pass


# -- the input options' values ---------------------------------------------------

def connects(values: "Values") -> "list[str]":
    """The remote hosts the options name (``--connect``; where a command
    takes several, given again for more)."""
    given = values.get("connect")
    if given is None:
        return []
    return [str(uri) for uri in given] if isinstance(given, list) else [str(given)]


def one_connect(values: "Values") -> "str | None":
    """The one remote host named, if any."""
    uris = connects(values)
    return uris[0] if uris else None


def is_live(values: "Values") -> bool:
    """Whether the input options name this running host."""
    return (values["root"] == "/" and values["cpuid_dump"] is None and values["arch"] is None
            and values["replay"] is None and not connects(values))


def probe_inputs(values: "Values", refresh: bool = False, skip: "tuple[str, ...]" = ()) -> "Host":
    """The Host the input options name (the live one afresh with ``refresh``);
    of a temporary recording (``--connect``, ``--replay -``), the lazy
    fields in ``skip`` are never read (the command does not show them)."""
    from capsfast.host import check_recorded_inputs, probe, replay_temporary

    if refresh and is_live(values) and not values["deep"]:
        return probe(refresh=True)
    if values["replay"] == "-":
        from capsfast.recording import remote

        check_recorded_inputs(values["root"], values["cpuid_dump"], values["arch"], "-", one_connect(values))
        with remote.ending_cleanly():  # SIGTERM mid-stream: the temporary recording is removed too
            return replay_temporary(remote.read_stream(sys.stdin.buffer, "standard input"),
                                    bool(values["deep"]), optional_str(values.get("cpu_map")), skip)
    uri = one_connect(values)
    if uri is not None and skip:
        from capsfast.host import connect_host

        check_recorded_inputs(values["root"], values["cpuid_dump"], values["arch"], values["replay"], uri)
        return connect_host(uri, bool(values["deep"]), optional_str(values.get("cpu_map")), skip)
    return probe(**local_inputs(values), replay=optional_str(values["replay"]), connect=one_connect(values),
                 cpu_map=optional_str(values.get("cpu_map")))


def input_args(values: "Values") -> list[str]:
    """The input options as given, absolute paths, for a command to repeat."""
    args = []
    if values["root"] != "/":
        args += ["--root", os.path.abspath(str(values["root"]))]
    if values["cpuid_dump"] is not None:
        args += ["--cpuid-dump", os.path.abspath(str(values["cpuid_dump"]))]
    if values["arch"] is not None:
        args += ["--arch", str(values["arch"])]
    if values["replay"] is not None:
        args += ["--replay", os.path.abspath(str(values["replay"]))]
    for uri in connects(values):
        args += ["--connect", uri]
    if values["deep"]:
        args.append("--deep")
    if values.get("cpu_map") is not None:
        args += ["--cpu-map", os.path.abspath(str(values["cpu_map"]))]
    return args


def local_inputs(values: "Values") -> "dict[str, Any]":
    """The input options that name a local host (root, dump, arch, deep),
    as keyword arguments of ``probe`` and ``capsfast.watch.changes``."""
    return {"root": str(values["root"]), "cpuid": optional_str(values["cpuid_dump"]),
            "arch": optional_str(values["arch"]), "deep": bool(values["deep"])}


def optional_str(value: object) -> "str | None":
    """A value given, as text; None where the option was not given."""
    return None if value is None else str(value)


# A SECONDS option's values lie below this (about 31 years: past any
# use, and within what the system's timers take); messages say "1e9".
MAX_SECONDS = 1e9


def seconds_option(flag: str, text: object) -> float:
    """The value of a SECONDS option: a number more than 0 and less than
    ``MAX_SECONDS``; UsageError saying so for anything else."""
    try:
        value = float(str(text))
    except ValueError:
        value = -1.0
    if not 0 < value < MAX_SECONDS:  # also refuses nan and inf
        raise UsageError("%s needs a number of seconds more than 0 and less than 1e9, not %r" % (flag, text))
    return value

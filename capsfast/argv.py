"""A small table-driven command-line parser.

argparse costs about 8 ms to import on a VM (it pulls in ``re`` and
``gettext``), as much as the rest of ``capsfast check`` together, so the
CLI parses its few flags with this instead.  ``Option`` rows describe the
flags; ``parse`` fills a dict; ``UsageError`` carries a one-line message.
"""


class UsageError(Exception):
    """A wrong flag or value: one line, exit status 2."""


class Option:
    __slots__ = ("flags", "dest", "metavar", "choices", "help", "default")

    def __init__(self, flags, help, metavar=None, choices=None, default=None, dest=None):
        self.flags = flags
        self.dest = dest or flags[-1].lstrip("-").replace("-", "_")
        self.metavar = metavar      # None: a switch that takes no value
        self.choices = choices
        self.help = help
        self.default = default if metavar is not None else False


def parse(options, positionals, argv):
    """``argv`` against the ``options`` table and the names of the required
    ``positionals``.  Returns a dict with every dest, ``help`` True when
    -h/--help was given.  Raises UsageError."""
    by_flag = {flag: opt for opt in options for flag in opt.flags}
    values = {opt.dest: opt.default for opt in options}
    values["help"] = False
    rest = []
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
        opt = by_flag.get(name)
        if opt is None:
            raise UsageError("unrecognised option %r" % name)
        if opt.metavar is None:
            if eq:
                raise UsageError("option %s takes no value" % name)
            values[opt.dest] = True
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
        values[opt.dest] = value
    if values["help"]:
        return values
    if len(rest) > len(positionals):
        raise UsageError("unexpected argument %r" % rest[len(positionals)])
    if len(rest) < len(positionals):
        raise UsageError("missing argument %s" % positionals[len(rest)])
    values.update(zip(positionals, rest))
    return values


def usage(prog, options, positionals, summary):
    """The help text for one command."""
    line = " ".join([prog] + ["[%s]" % _flag_text(o) for o in options] + list(positionals))
    rows = [(_flag_text(o), o.help) for o in options] + [("-h, --help", "show this help")]
    width = max(len(r[0]) for r in rows)
    body = "\n".join("  %s  %s" % (left.ljust(width), right) for left, right in rows)
    return "usage: %s\n\n%s\n\noptions:\n%s\n" % (line, summary, body)


def _flag_text(opt):
    text = ", ".join(opt.flags)
    if opt.metavar is not None:
        text += " " + (("{" + ",".join(opt.choices) + "}") if opt.choices else opt.metavar)
    return text

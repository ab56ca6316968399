"""Ansible: the host as a ``facts.d`` fact.

Ansible's setup module runs every executable ``*.fact`` file in its
``fact_path`` (``/etc/ansible/facts.d`` by default) and parses what it
prints as JSON, so the installed ``capsfast.fact`` makes the whole
``capsfast capabilities --format json`` document appear as
``ansible_local.capsfast`` on the managed host.
"""
from capsfast.render import render as render_format

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from capsfast.model import Host

DEFAULT_DIR = "/etc/ansible/facts.d"
FACT_NAME = "capsfast.fact"


def render(host: "Host") -> str:
    """The JSON the fact prints: the same document as ``--format json``."""
    return render_format(host, "json")


def _sh_quote(word: str) -> str:
    # POSIX sh single quotes take everything literally but ' itself.
    return "'" + word.replace("'", "'\"'\"'") + "'"


def fact_script(python: str, extra_args: "Iterable[str]" = ()) -> str:
    """The executable fact: it runs capsfast with the absolute path of the
    interpreter that installed it (``python``), so it works whatever PATH
    the setup module runs it with (a virtualenv's ``bin`` is rarely on it)."""
    words = [python, "-m", "capsfast", "export", "ansible"] + list(extra_args)
    return (
        "#!/bin/sh\n"
        "# Ansible fact: ansible_local.capsfast.  Installed by\n"
        "# 'capsfast export ansible --install'; reinstall after moving capsfast.\n"
        "exec %s\n" % " ".join(_sh_quote(w) for w in words)
    )

"""Ansible: the host as a ``facts.d`` fact.

Ansible's setup module runs every executable ``*.fact`` file in its
``fact_path`` (``/etc/ansible/facts.d`` by default) and parses what it
prints as JSON, so the installed ``capsfast.fact`` makes the whole
``capsfast capabilities --format json`` document appear as
``ansible_local.capsfast`` on the managed host.
"""
from capsfast.render import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from capsfast.model import Host

DEFAULT_DIR = "/etc/ansible/facts.d"
FACT_NAME = "capsfast.fact"


def render(host: "Host") -> str:
    """The JSON the fact prints: the same document as ``--format json``."""
    return json.render(host)


def _sh_quote(word: str) -> str:
    # POSIX sh single quotes take everything literally but ' itself.
    return "'" + word.replace("'", "'\"'\"'") + "'"


def fact_script(python: str, package_parent: str, extra_args: "Iterable[str]" = ()) -> str:
    """The executable fact: it runs capsfast with the absolute path of the
    interpreter that installed it (``python``), so it works whatever PATH
    the setup module runs it with (a virtualenv's ``bin`` is rarely on it),
    and imports the installed package from ``package_parent`` (the
    directory holding ``capsfast/``) whatever the caller's working directory
    and environment: isolated mode (``-I``) leaves out the current
    directory, ``PYTHONPATH`` and the like, where a capsfast source tree or
    another package of the same name would be found first."""
    code = "import sys; sys.path.insert(0, %r); from capsfast.cli import run; run()" % package_parent
    words = [python, "-I", "-c", code, "export", "ansible"] + list(extra_args)
    return (
        "#!/bin/sh\n"
        "# Ansible fact: ansible_local.capsfast.  Installed by\n"
        "# 'capsfast export ansible --install'; reinstall after moving capsfast.\n"
        "exec %s\n" % " ".join(_sh_quote(w) for w in words)
    )

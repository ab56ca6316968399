"""Where a host's facts come from: ``base.Source`` (a directory, CPUID
from a dump or none), ``live.Live`` (the running host, through the C
module) and ``replay.Replay`` (a recording, or a remote host fetched as
one).  Parts ask a source; only sources touch the C module, know a root
prefix or know a recording."""

"""Recordings and remote hosts: a recording of this machine replayed
from a tar stream against the same recording in a directory (the stream
costs one pass over its members on top), and with ``--connect`` the SSH
floor under a remote query: ``ssh HOST true`` with the same options."""
from __future__ import annotations

import io
import os
import tempfile
import time

from capsfast.bench.measure import Bench, Result, process_time, step


@step("a recording replayed from a directory and from a tar stream")
def replay_stream(b: Bench) -> None:
    from capsfast.host import probe, replay_temporary
    from capsfast.model import resolve
    from capsfast.recording import collector, format as recording, remote

    files = recording.collect()
    stream = io.BytesIO()
    collector.write_tar(files, stream)
    tar = stream.getvalue()
    with tempfile.TemporaryDirectory(prefix="capsfast-bench-") as directory:
        kept = os.path.join(directory, "kept")
        with remote.read_stream(io.BytesIO(tar), "bench") as extracted:
            recording.write(recording.files_of(extracted), kept)
        kept_samples, stream_samples = [], []
        for _ in range(b.alt_runs * 3):
            start = time.perf_counter_ns()
            resolve(probe(replay=kept))
            kept_samples.append((time.perf_counter_ns() - start) / 1e3)
            start = time.perf_counter_ns()
            replay_temporary(remote.read_stream(io.BytesIO(tar), "bench"))
            stream_samples.append((time.perf_counter_ns() - start) / 1e3)
    b.keep(Result("replay_directory", "probe(replay=DIR) of this machine's recording, every part read",
                  kept_samples))
    b.keep(Result("replay_stream", "the same recording from a tar stream (--replay -): extracted, every part "
                  "read, removed (%d members, %d bytes)" % (len(files), len(tar)), stream_samples))


@step("the SSH floor under a remote query (--connect)")
def remote_ssh_floor(b: Bench) -> None:
    what = "ssh HOST true with the options of --connect: the handshake a remote query cannot go under"
    if b.connect is None:
        b.keep(Result("remote_ssh_floor", what, [], "only with --connect URI"))
        return
    from capsfast.recording import remote

    argv = remote.parse_uri(b.connect).ssh_argv(remote.DEFAULT_TIMEOUT)
    argv[-1] = "true"
    samples: list[float] = []
    status = 0
    for _ in range(b.alt_runs):
        took, status = process_time(argv, None)
        samples.append(took)
    b.keep(Result("remote_ssh_floor", what, samples, "exit status %d" % status if status else None))

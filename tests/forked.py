"""One function run in a forked child, for tests that must survive a hang
or a deadlock, or that must run as another user."""
import os
import pickle
import select
import signal
import warnings

import pytest

HANG_GUARD = 120  # seconds; only a hang or a deadlock gets near it


def in_child(work, user=None, hang="the child hung"):
    """``work()`` run in a forked child (as ``user``, a ``(uid, gid)``, if
    given: root drops to it first).  Returns ``("ok", value)`` or
    ``("raised", type name, message)``.  A child that gives no answer within
    HANG_GUARD seconds is killed and the test fails with ``hang``."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            try:
                if user is not None:
                    os.setgroups([])
                    os.setgid(user[1])
                    os.setuid(user[0])
                out = ("ok", work())
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                out = ("raised", type(e).__name__, str(e))
            data = pickle.dumps(out)
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], HANG_GUARD)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("%s (no answer in %d s)" % (hang, HANG_GUARD))
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert chunks, "the child died (wait status %d)" % status
    return pickle.loads(b"".join(chunks))

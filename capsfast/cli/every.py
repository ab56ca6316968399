"""``--every SECONDS``: run a step now and then on a fixed beat until
SIGTERM or SIGINT.

The two signals are blocked while the loop runs and collected with
``sigtimedwait`` between steps, so a stop request never lands in the middle
of a write: the step in progress finishes, then the loop returns.
"""
import signal
import time

from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run(interval: float, step: "Callable[[], object]", on_error: "Callable[[CapsfastError], object]") -> int:
    """Call ``step()`` now and every ``interval`` seconds.  A CapsfastError
    from the first step is raised (a bad setup should fail at once); later
    ones go to ``on_error(error)`` and the next beat tries again.  Returns
    the number of the signal that stopped it."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        first = True
        beat = time.monotonic()
        while True:
            try:
                step()
            except CapsfastError as e:
                if first:
                    raise
                on_error(e)
            first = False
            beat += interval
            now = time.monotonic()
            if beat < now:  # the step overran: keep the beat, skip what was missed
                beat += ((now - beat) // interval + 1) * interval
            info = signal.sigtimedwait(STOP_SIGNALS, beat - now)
            if info is not None:
                return info.si_signo
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)

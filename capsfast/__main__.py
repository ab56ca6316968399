import gc

gc.disable()  # as the capsfast command (bin/capsfast says why)

from capsfast.cli import run  # noqa: E402

run()

from capsfast.cli import run

run()

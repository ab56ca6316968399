import sys

from capsfast.cli import main

sys.exit(main())

"""`python -m model.train` = `aia train`."""

import sys

from model.cli import main

sys.exit(main(["train", *sys.argv[1:]]))

"""`python -m model.train` = `aia train` (what `torchrun -m model.train` runs)."""

import argparse
import sys

from model.train import cli

parser = argparse.ArgumentParser(prog="python -m model.train", description=cli.__doc__)
cli.add_arguments(parser)
sys.exit(int(cli.run(parser.parse_args())))

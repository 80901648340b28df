"""`aia models`: a models directory (exporters/models_dir.py) from the command line.

    aia models publish ARTIFACT --to MODELS_DIR [--no-switch]   add a version, point at it
    aia models list MODELS_DIR                                   versions, the current one
    aia models use MODELS_DIR VERSION                            point at VERSION (rollback)

A running `aia serve --models-dir MODELS_DIR` switches on `POST /v1/admin/reload`, on
SIGHUP, or by itself when AIA_MODELS_WATCH_S is set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from exporters.artifact import ArtifactError
from exporters.models_dir import list_versions, publish, read_pointer, write_pointer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("publish", help="copy an artifact in as a version and point at it")
    add.add_argument("artifact", type=Path, help="an artifact directory (`aia export --out`)")
    add.add_argument("--to", type=Path, required=True, metavar="MODELS_DIR")
    add.add_argument("--no-switch", action="store_true",
                     help="add the version without pointing `current` at it")
    show = sub.add_parser("list", help="the versions and which one is current (JSON)")
    show.add_argument("models_dir", type=Path)
    use = sub.add_parser("use", help="point `current` at a published version (rollback)")
    use.add_argument("models_dir", type=Path)
    use.add_argument("version")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "publish":
            version = publish(args.artifact, args.to, switch=not args.no_switch)
            print(json.dumps({"version": version, "current": read_pointer(args.to)}))
        elif args.action == "use":
            write_pointer(args.models_dir, args.version)
            print(json.dumps({"current": args.version}))
        else:
            pointer = args.models_dir / "current"
            print(json.dumps({"versions": list_versions(args.models_dir),
                              "current": read_pointer(args.models_dir)
                              if pointer.exists() else None}, indent=2))
    except (ArtifactError, OSError) as err:
        print(f"aia models {args.action}: {err}", file=sys.stderr)
        return 2
    return 0

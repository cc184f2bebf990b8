"""The ``mlserving`` command: one subcommand per process the project runs."""

import argparse
import importlib
import sys

# Each subcommand lives in its own module exposing add_arguments(parser) and run(args), imported
# only when chosen so `mlserving train` never pays for the server or operator imports.
SUBCOMMANDS = {
    "train": ("mlserving.training.cli", "train a model and write a versioned registry entry"),
    "import": ("mlserving.training.import_cli", "turn a scikit-learn, XGBoost or LightGBM artifact into a registry entry"),
    "serve": ("mlserving.server.cli", "serve one model version over HTTP"),
    "router": ("mlserving.server.router.cli", "split traffic between model variants"),
    "operator": ("mlserving.operator.cli", "reconcile ModelDeployment resources"),
    "fetch": ("mlserving.cli.fetch", "download or copy a model version into a directory (init container)"),
    "rollout": ("mlserving.cli.rollout", "pause, resume, promote, abort or retry a rollout, or show its status"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="mlserving", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(sp)
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return module.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())

"""``mlserving train``: train a model version and write it to the registry."""

import argparse
import json
import sys
from pathlib import Path

from mlserving.training.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from mlserving.training.data import DATASETS


def _param(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param: expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="fraud", help="model name, a DNS label (default: fraud)")
    parser.add_argument("--version", required=True, help="version to write, e.g. 1.0.0")
    parser.add_argument("--out", type=Path, default=Path("models"), help="registry root (default: models/)")
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), default=DEFAULT_ALGORITHM)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="fraud",
                        help="example data: fraud (binary), multiclass (3 string labels), regression")
    parser.add_argument("--seed", type=int, default=42, help="seed of the data and the estimator")
    parser.add_argument("--samples", type=int, default=10_000, help="rows of synthetic data")
    parser.add_argument("--n-estimators", type=int, help="trees (forest and boosting algorithms)")
    parser.add_argument("--max-depth", type=int, help="tree depth (forest and boosting algorithms)")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                        help="any other hyper-parameter of the estimator (value parsed as JSON)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold for is_fraud")
    parser.add_argument("--force", action="store_true", help="overwrite an existing version")


def run(args: argparse.Namespace) -> int:
    from mlserving.training.frameworks import ArtifactError
    from mlserving.training.registry import RegistryError
    from mlserving.training.train import train_version

    params = dict(args.param)
    if args.n_estimators is not None:
        params["n_estimators"] = args.n_estimators
    if args.max_depth is not None:
        params["max_depth"] = args.max_depth
    try:
        train_version(args.model, args.version, args.out, algorithm=args.algorithm, params=params,
                      seed=args.seed, samples=args.samples, threshold=args.threshold, force=args.force,
                      dataset=args.dataset)
    except (RegistryError, ArtifactError, ValueError, TypeError) as exc:
        print(f"mlserving train: error: {exc}", file=sys.stderr)
        return 2
    return 0

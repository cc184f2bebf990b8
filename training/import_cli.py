"""``mlserving import``: turn a model artifact trained elsewhere into a registry version."""

import argparse
import sys
from pathlib import Path

from mlserving.training.frameworks import FRAMEWORKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the artifact: joblib/pickle (sklearn), JSON or UBJ (xgboost), "
                                                "text model (lightgbm)")
    parser.add_argument("--model", required=True, help="model name, a DNS label")
    parser.add_argument("--version", required=True, help="version to write, e.g. 1.0.0")
    parser.add_argument("--framework", required=True, choices=FRAMEWORKS)
    parser.add_argument("--reference", type=Path, help="feature rows (.csv with a header, or .parquet): the "
                                                       "drift reference and the rows ONNX is checked on")
    parser.add_argument("--out", type=Path, default=Path("models"), help="registry root (default: models/)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold of a binary classifier")
    parser.add_argument("--force", action="store_true", help="replace an existing version")


def run(args: argparse.Namespace) -> int:
    from mlserving.training.frameworks import ArtifactError
    from mlserving.training.importer import import_artifact
    from mlserving.training.registry import RegistryError

    if not 0.0 < args.threshold < 1.0:
        print(f"mlserving import: error: threshold: must be between 0 and 1 (exclusive), got {args.threshold}",
              file=sys.stderr)
        return 2
    try:
        import_artifact(args.file, args.framework, args.model, args.version, args.out, reference=args.reference,
                        force=args.force, threshold=args.threshold)
    except (ArtifactError, RegistryError) as exc:
        print(f"mlserving import: error: {exc}", file=sys.stderr)
        return 2
    return 0

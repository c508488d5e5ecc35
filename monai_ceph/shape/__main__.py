"""``python -m monai_ceph.shape DATALIST OUT [--section training]``: build and save a shape model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monai_ceph.data import DataFileError

from .build import build_shape_model
from .model import VARIANCE_KEPT


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m monai_ceph.shape",
        description="Fit a Procrustes-aligned point distribution model (PCA, mm) on a datalist section's landmarks "
        "(mm = source pixels * spacing) and save it as JSON, e.g. next to the model as models/shape_model.json.",
    )
    p.add_argument("datalist", help="datalist JSON (python -m monai_ceph.data.datalist)")
    p.add_argument("output", help="shape model JSON to write")
    p.add_argument("--section", default="training", help="datalist section (default: %(default)s)")
    p.add_argument("--variance-kept", type=float, default=VARIANCE_KEPT,
                   help="share of variance of the modes (%(default)s)")
    args = p.parse_args(argv)
    try:
        model = build_shape_model(args.datalist, args.section, variance_kept=args.variance_kept)
        path = model.save(args.output)
    except (DataFileError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}: {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

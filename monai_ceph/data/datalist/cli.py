"""The datalist builder's command line: ``python -m monai_ceph.data.datalist DATASET_DIR OUTPUT.json``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..readers import DataFileError
from .builder import DATALIST_KEYS, DATASET_FORMATS, build_datalist, warn_if_rescaled, write_datalist

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m monai_ceph.data.datalist",
        description="Write a MONAI datalist JSON (training/validation/test) of a cephalometric landmark dataset. "
        "ISBI 2015 standard split: training = 001-150, validation = Test1 (151-300), test = Test2 (301-400); "
        "Aariz: its train/valid/test folders; labelme: a seeded split.",
    )
    p.add_argument("dataset_dir", help="dataset folder")
    p.add_argument("output", help="datalist JSON to write")
    p.add_argument("--format", dest="fmt", default="isbi2015", choices=DATASET_FORMATS,
                   help="dataset layout (default: %(default)s)")
    p.add_argument("--ground-truth", default=None,
                   help="isbi2015: senior (default) | average; isbi2015_original: senior | junior | average; "
                   "aariz: average (default) | senior | junior")
    p.add_argument("--split", nargs=3, type=float, default=None, metavar=("TRAIN", "VAL", "TEST"),
                   help="fractions for a seeded split of all images instead of the standard split")
    p.add_argument("--seed", type=int, default=0, help="seed of the seeded split (default: %(default)s)")
    p.add_argument("--landmark-set", default=None, help="aariz: aariz (default) | isbi2015; labelme: set of the labels")
    p.add_argument("--spacing", nargs="+", type=float, default=None, metavar="MM",
                   help="labelme: mm/pixel (one value, or x y) for images that carry none")
    p.add_argument("--relative", action="store_true", help="write image paths relative to the output's folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status: 0, or 2 with one line ``error: <file or option>: <fault>``
    on stderr (no traceback) when the input cannot be used. An existing output is left as it was on error."""
    args = _parser().parse_args(argv)  # a bad option: argparse's usage line and exit status 2
    try:
        _refuse_an_input_as_output(args.output, args.dataset_dir, [])
        if args.split is not None:
            warn_if_rescaled(args.split, "--split fractions")
        datalist = build_datalist(args.dataset_dir, args.fmt, args.ground_truth, args.split, args.seed,
                                  args.landmark_set, args.spacing)
        _refuse_an_input_as_output(args.output, args.dataset_dir,
                                   [item["image"] for key in DATALIST_KEYS for item in datalist.get(key, [])])
    except (DataFileError, OSError, ValueError, KeyError) as e:
        return _fail(_describe(e, args))
    try:
        path = write_datalist(datalist, args.output, relative=args.relative)
    except OSError as e:
        return _fail(f"{args.output}: cannot write the datalist ({e.strerror or e}).")
    counts = ", ".join(f"{k} {len(datalist[k])}" for k in DATALIST_KEYS)
    print(f"wrote {path}: {counts}")
    return 0


def _refuse_an_input_as_output(output, dataset_dir, images: Sequence[str]) -> None:
    """A :class:`DataFileError` naming ``output`` when writing it would replace an input: an existing file inside the
    dataset folder (its annotation CSV or JSON, an image, a mapping CSV) or an image of the datalist."""
    out = Path(output).resolve()
    root = Path(dataset_dir).resolve()
    if out.is_file() and (out == root or root in out.parents):
        raise DataFileError(f"{output}: an existing file inside the dataset folder {dataset_dir}, maybe one of its "
                            "inputs (annotations, images); it is not replaced: write the datalist outside the "
                            "dataset folder (or delete that file first if it is an old datalist).")
    if any(Path(image).resolve() == out for image in images):
        raise DataFileError(f"{output}: an image of the dataset; it is not replaced: write the datalist elsewhere.")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _describe(error: Exception, args: argparse.Namespace) -> str:
    """``<file>: <fault>`` of an error: our errors name their file; others get the dataset folder (or file) named."""
    if isinstance(error, OSError) and error.filename is not None and not isinstance(error, FileNotFoundError):
        return f"{error.filename}: {error.strerror or error}"
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if any(str(p) in message for p in (args.dataset_dir, args.output)):
        return message
    return f"{args.dataset_dir}: {message}"

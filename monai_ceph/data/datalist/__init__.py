"""Build a MONAI datalist JSON from a landmark dataset, with its standard split or a seeded one.

A datalist has the keys ``"training"``, ``"validation"`` and ``"test"`` (all three always present), each a list
of items ``{"image": path, "landmarks": [[x, y], ...], "spacing": [sx, sy], "id": "001",
"landmark_set": "isbi2015"}`` in the package convention (pixel-index ``(x, y)``, mm/pixel, a missing landmark
written as ``[null, null]``), plus descriptive keys (``"name"``, ``"landmark_set"``, ``"landmark_names"``,
``"ground_truth"``, ``"split"``). It loads with :py:func:`monai.data.load_decathlon_datalist` (which resolves
relative image paths against the JSON's folder).

Standard splits:

- ISBI 2015 (both layouts): ``"training"`` = 001-150, ``"validation"`` = Test1 (151-300), ``"test"`` = Test2
  (301-400), the challenge's split and what published results use. Note that "validation" is an official
  test set: a model selected on it and reported on it is reported optimistically; use Test2 (``"test"``) for
  an untouched figure, or a seeded split.
- Aariz: its ``train``/``valid``/``test`` folders.
- labelme folders have none: a seeded split with fractions :data:`DEFAULT_FRACTIONS` is used.

A seeded split (``split=(f_train, f_val, f_test)``) pools every record, orders them by id, permutes them with
``numpy.random.default_rng(seed)`` and cuts by the fractions, rounded so that the counts add up to the total
(MONAI's ``partition_dataset`` rounds each part on its own and can drop an item).

Command line: ``python -m monai_ceph.data.datalist DATASET_DIR OUTPUT.json [--format ...]`` (see ``--help``; the
code is in :mod:`.cli`, run by this package's ``__main__``, so importing the package never imports the command).
"""

from . import builder
from .builder import (
    DATALIST_KEYS,
    DATASET_FORMATS,
    DEFAULT_FRACTIONS,
    STANDARD_SPLITS,
    SplitWarning,
    warn_if_rescaled,
    build_datalist,
    datalist_from_records,
    load_records,
    split_records,
    write_datalist,
)
from .cli import main

__all__ = [*builder.__all__, "main"]

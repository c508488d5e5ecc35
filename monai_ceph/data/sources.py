"""One entry point from "what the user gave" to a checked datalist: a datalist JSON, a dataset folder, or nothing.

Bundles call :func:`load_datalist` once at start-up, so a bad entry (missing image, wrong landmark count, bad
spacing) stops the run with an error naming the entry before any training happens, and a run given no data at
all trains on the embedded synthetic phantoms, generated on first use. With ``lazy=True`` nothing is read or
written until a section is first used (a run that takes its images from elsewhere, e.g. inference on a folder,
never writes phantoms); :func:`check_section` then fails before training when a section the run needs is
missing or empty, naming the section and the datalist file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai.data import load_decathlon_datalist

from .datalist import build_datalist
from .ids import duplicate_ids, output_name, unique_file_ids
from .landmark_sets import get_landmark_set
from .phantom import PHANTOM_SPATIAL_SIZE, write_phantom_dataset
from .readers import (
    IMAGE_SUFFIXES,
    DataFileError,
    LandmarkFileError,
    check_spacing,
    is_dicom,
    landmarks_from_json,
    read_dicom_spacing,
    read_json,
    resolve_spacing,
)
from .tolerant import FAILURE_KEY, failure_reason

__all__ = [
    "Datalist",
    "LazyDatalist",
    "detect_format",
    "check_datalist",
    "check_section",
    "datalist_landmark_set",
    "load_datalist",
    "image_folder_datalist",
]

DEFAULT_LANDMARK_SET = "isbi2015"
NO_SPACING = "the image has no pixel spacing of its own"


class Datalist(dict):
    """Checked datalist sections (``{"training": [...], "validation": [...], "test": [...], ...}``) and their
    ``source``: the datalist file, dataset folder or phantom datalist they came from (named in errors)."""

    def __init__(self, sections: Mapping[str, list], source: str = "datalist") -> None:
        super().__init__(sections)
        self.source = source


class LazyDatalist(Mapping):
    """The :class:`Datalist` of :func:`load_datalist`'s arguments, resolved (read, checked, phantoms written) on the
    first access to a section, its keys or its ``source``; creating it reads and writes nothing."""

    def __init__(self, **kwargs) -> None:
        self._kwargs = kwargs
        self._resolved: Datalist | None = None

    def resolve(self) -> Datalist:
        if self._resolved is None:
            self._resolved = load_datalist(**self._kwargs)
        return self._resolved

    @property
    def resolved(self) -> bool:
        """Whether the sections were read (so phantoms, if any, written)."""
        return self._resolved is not None

    @property
    def source(self) -> str:
        return self.resolve().source

    def __getitem__(self, key):
        return self.resolve()[key]

    def __iter__(self):
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def __repr__(self) -> str:
        return f"LazyDatalist({self._kwargs!r}, resolved={self.resolved})"


def detect_format(dataset_dir: str | os.PathLike) -> str:
    """The :data:`~monai_ceph.data.datalist.DATASET_FORMATS` name of a dataset folder, from its layout."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist.")
    if (root / "images").is_dir() and any(root.glob("*_senior.csv")):
        return "isbi2015"
    if (root / "RawImage").is_dir() and (root / "AnnotationsByMD").is_dir():
        return "isbi2015_original"
    if any((root / s / "Cephalograms").is_dir() for s in ("train", "valid", "test")):
        return "aariz"
    if any(root.glob("*.json")):
        return "labelme"
    raise DataFileError(
        f"{root}: not a known dataset layout (ISBI 2015 images/ + *_senior.csv, ISBI 2015 RawImage/ + "
        "AnnotationsByMD/, Aariz train|valid|test/Cephalograms, or labelme *.json); give a datalist JSON instead."
    )


def check_datalist(items: Sequence[Mapping], where: str = "datalist") -> list[dict]:
    """Check every item of a datalist section and return them as plain dicts; raise naming the first bad one.

    Each item needs an existing ``"image"``, ``"landmarks"`` of the length of its ``"landmark_set"`` (default
    ``isbi2015``) with numeric or null coordinates, and a plausible ``"spacing"`` of two values; a DICOM image may
    leave ``"spacing"`` out when its header has a spacing tag (filled in from it, ``(sx, sy)``). No two items may
    share an id (their ``"id"``, else their image's stem, case ignored: they would write the same output files).
    """
    checked = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise DataFileError(f"{where} entry {i}: expected an object {{'image', 'landmarks', 'spacing'}}, "
                                f"got {item!r}.")
        name = f"{where} entry {i} (id {item.get('id', '?')!r}, image {item.get('image')!r})"
        for key in ("image", "landmarks"):
            if key not in item:
                raise DataFileError(f"{name}: missing key {key!r}.")
        if not Path(item["image"]).is_file():
            raise FileNotFoundError(f"{name}: image file not found.")
        if "spacing" not in item:
            if not is_dicom(item["image"]):
                raise DataFileError(f"{name}: missing key 'spacing' (only a DICOM image has a spacing of its own).")
            item = {**item, "spacing": [float(s) for s in _header_spacing(item["image"], name)]}
        landmark_set = get_landmark_set(item.get("landmark_set", "isbi2015"))
        landmarks = landmarks_from_json(item["landmarks"], f"{name} landmarks")
        if len(landmarks) != len(landmark_set):
            raise LandmarkFileError(
                f"{name}: {len(landmarks)} landmarks, expected {len(landmark_set)} (x, y) landmarks of the "
                f"{landmark_set.name} set."
            )
        check_spacing(item["spacing"], name)
        checked.append(dict(item))
    _refuse_duplicate_ids(checked, where)
    return checked


def _refuse_duplicate_ids(items: Sequence[Mapping], where: str) -> None:
    """A :class:`DataFileError` naming the ids (as the outputs are named) that more than one item of ``items`` has."""
    duplicates = duplicate_ids(output_name(item.get("id"), item["image"]) for item in items)
    if duplicates:
        listed = "; ".join(f"{name!r} at entries {entries}" for name, entries in duplicates.items())
        raise DataFileError(f"{where}: items share an id ({listed}); an item's outputs are named by its id (or, "
                            "without one, its image's file name), so one would overwrite another's: make them unique.")


def _header_spacing(image: str | os.PathLike, name: str):
    """The spacing tags of DICOM ``image``; a :class:`DataFileError` naming the datalist entry ``name`` without."""
    try:
        return read_dicom_spacing(image)
    except (DataFileError, OSError) as e:  # SpacingError is a DataFileError
        raise DataFileError(f"{name}: missing key 'spacing', and the DICOM header gives none ({e})") from e


def check_section(datalist: Mapping[str, Sequence], section: str | Sequence[str], where: str | None = None):
    """Return ``datalist`` if each of ``section`` (one name or several) is present and non-empty, else raise.

    A run calls it before it starts, for what it needs: training ``["training", "validation"]`` (an empty
    validation section would train "successfully" and never write a best model), evaluation its ``eval_section``.

    Args:
        datalist: the sections (a :class:`Datalist`, :class:`LazyDatalist` or plain mapping).
        section: the section name, or names.
        where: the datalist file named in the error; default ``datalist.source`` when it has one.

    Raises:
        DataFileError: naming the datalist file, the section and the sizes of the sections there are.
    """
    names = [section] if isinstance(section, str) else list(section)
    for name in names:
        if not datalist.get(name):
            source = where if where is not None else getattr(datalist, "source", "datalist")
            sizes = {k: len(v) for k, v in datalist.items() if isinstance(v, Sequence) and not isinstance(v, str)}
            state = "empty" if name in datalist else "missing"
            raise DataFileError(f"{source}: datalist section {name!r} is {state}, and this run needs its items; "
                                f"sections and sizes: {sizes}.")
    return datalist


def datalist_landmark_set(datalist: Mapping[str, Sequence], default: str = DEFAULT_LANDMARK_SET) -> str:
    """The name of the landmark set of every item of ``datalist`` (their ``"landmark_set"``; ``default`` for items
    without one), so that the number of landmarks and a network's head groups follow the data::

        lms = get_landmark_set(datalist_landmark_set(datalist))  # len(lms), lms.group_indices

    Raises:
        DataFileError: items of different sets, naming the datalist, two sets and an item of each.
    """
    found: dict[str, str] = {}
    for key, items in datalist.items():
        if isinstance(items, str) or not isinstance(items, Sequence):
            continue
        for i, item in enumerate(items):
            name = get_landmark_set(item.get("landmark_set", default) if isinstance(item, Mapping) else default).name
            found.setdefault(name, f"[{key}] entry {i} (id {item.get('id', '?')!r})")
    if len(found) > 1:
        source = getattr(datalist, "source", "datalist")
        mixed = ", ".join(f"{n} at {at}" for n, at in found.items())
        raise DataFileError(f"{source}: items of different landmark sets ({mixed}); a model has one set.")
    return next(iter(found), get_landmark_set(default).name)


def load_datalist(
    datalist: str | os.PathLike | None = None,
    dataset_dir: str | os.PathLike | None = None,
    fmt: str | None = None,
    ground_truth: str | None = None,
    phantom_dir: str | os.PathLike = "data/phantoms",
    num_phantoms: int = 64,
    phantom_size: Sequence[int] | None = None,
    seed: int = 0,
    lazy: bool = False,
) -> Datalist | LazyDatalist:
    """Resolve the data a bundle runs on and return its checked ``training``/``validation``/``test`` sections.

    Priority: ``datalist`` (a JSON file, relative image paths resolved against its folder; every list of items in
    it is a section, so extra ones such as ``"test2"`` are kept), else ``dataset_dir``
    (format detected from the layout unless ``fmt`` is given, standard split), else the embedded default:
    ``num_phantoms`` synthetic phantoms written to ``phantom_dir`` on first use and reused after.

    Args:
        lazy: return a :class:`LazyDatalist` that does all this on first use (a bundle config that defines the
            datalist for every run, but uses it only in some, writes no phantoms in the others).
    """
    if lazy:
        return LazyDatalist(datalist=datalist, dataset_dir=dataset_dir, fmt=fmt, ground_truth=ground_truth,
                            phantom_dir=phantom_dir, num_phantoms=num_phantoms, phantom_size=phantom_size, seed=seed)
    if datalist is not None:
        path = Path(datalist)
        if not path.is_file():
            raise FileNotFoundError(f"datalist file {path} does not exist.")
        content = read_json(path, DataFileError)
        if not isinstance(content, dict):
            raise DataFileError(f"{path}: not a datalist (expected an object of sections, got {type(content).__name__}).")
        # every list of items is a section: training/validation/test, and any others (e.g. "test2")
        names = [k for k, v in content.items() if isinstance(v, list) and all(isinstance(i, dict) for i in v)]
        sections = {key: [] for key in ("training", "validation", "test")}
        for key, value in content.items():
            if key in names:
                continue
            if key in sections and not isinstance(value, list):
                raise DataFileError(f"{path} [{key}]: a section must be a list of items, got {type(value).__name__}.")
            # a section with an entry that is not an item (a standard one, or another with some items): refused, not
            # dropped; a list of no items under another key (notes, landmark names) is not a section
            if isinstance(value, list) and (key in sections or any(isinstance(i, dict) for i in value)):
                i, entry = next((i, e) for i, e in enumerate(value) if not isinstance(e, dict))
                raise DataFileError(f"{path} [{key}] entry {i}: expected an object {{'image', 'landmarks', "
                                    f"'spacing'}}, got {entry!r}.")
        for key in names:
            sections[key] = load_decathlon_datalist(str(path), is_segmentation=False, data_list_key=key) if content[key] else []
        where = str(path)
    elif dataset_dir is not None:
        fmt = fmt or detect_format(dataset_dir)
        built = build_datalist(dataset_dir, fmt=fmt, ground_truth=ground_truth)
        sections = {key: built.get(key, []) for key in ("training", "validation", "test")}
        where = f"{dataset_dir} ({fmt})"
    else:
        out = Path(phantom_dir)
        file = out / "datalist.json"
        if not file.is_file():
            write_phantom_dataset(out, num_images=num_phantoms, spatial_size=phantom_size or PHANTOM_SPATIAL_SIZE,
                                  seed=seed)
        return load_datalist(datalist=file)
    return Datalist({key: check_datalist(items, f"{where} [{key}]") for key, items in sections.items()}, where)


def image_folder_datalist(
    folder: str | os.PathLike, spacing: Sequence[float] | float | None = None, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> list[dict]:
    """Inference items ``{"image", "spacing", "id"}`` for every image in ``folder`` (sorted, not recursive), or for a
    single image file.

    DICOM files take their spacing from their tags (PixelSpacing, else ImagerPixelSpacing, else
    NominalScannedPixelSpacing); other files, and DICOM files without those tags, take ``spacing`` (mm/pixel, one
    value or ``(sx, sy)``), and without it are an error naming the file, since a JPEG/PNG carries no physical size
    and every distance reported in mm would be wrong.

    A DICOM file whose header cannot be read, or whose spacing tag is invalid, does not stop the others: its item
    carries the reason under :data:`~monai_ceph.data.tolerant.FAILURE_KEY` (and no spacing), and
    :class:`~monai_ceph.data.FailureTolerantDataLoader` reports it as a skipped file without loading it.

    Ids (the names of the outputs) are the file stems, unique per input file (:func:`~monai_ceph.data.ids.unique_file_ids`):
    files that share a stem (``001.jpg`` and ``001.dcm``) get the stem and their suffix (``001_jpg``, ``001_dcm``),
    and a counter where that is another file's stem (``a_png_2`` beside ``a_png.png``), so none overwrites another's
    results.
    """
    root = Path(folder)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    else:
        raise FileNotFoundError(f"input {root} does not exist.")
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(suffixes)}) in {root}.")
    items = []
    for f, image_id in zip(files, unique_file_ids(files)):
        item = {"image": str(f.resolve()), "spacing": None, "id": image_id}
        try:
            header = read_dicom_spacing(f, required=False) if is_dicom(f) else None
        except Exception as error:  # noqa: BLE001 - an unreadable header or bad spacing tag: this file fails alone
            items.append({**item, FAILURE_KEY: failure_reason(error, str(f))})
            continue
        pixel = header if header is not None else resolve_spacing(f, default=spacing, missing=NO_SPACING)
        items.append({**item, "spacing": [float(s) for s in pixel]})
    return items

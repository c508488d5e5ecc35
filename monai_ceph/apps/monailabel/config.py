"""The app's settings, read from MONAI Label's ``--conf key value`` pairs, and the bundle configs they select.

``--conf`` values arrive as strings; every key is optional:

=================  =====================================================================================
``bundle``         the bundle folder (``configs/train.json`` + ``configs/inference.json``); default: the
                   package's own bundle (``bundles/cephres`` of a checkout, ``monai_ceph/bundle`` of a wheel).
                   Its trained models are ``<bundle>/models``; while it has none (no ``models/model.pt``),
                   the app infers with the released model (``<package bundle>/pretrained/isbi2015``) and its
                   train task fine-tunes from it into ``<bundle>/models``
``spacing``        mm/pixel for images without their own (JPEG/PNG/BMP; DICOM uses its header):
                   ``0.1`` or ``0.1,0.1`` (x, y); default ``0.1`` (the ISBI 2015 scanner), reported as
                   ``"spacing_source": "default"`` in every result that uses it
``spatial_size``   model input size in MONAI order (width, height of a radiograph); default: the size
                   the model was trained at (its ``model.json``), else ``576,736`` (``MODEL_SPATIAL_SIZE``);
                   a value that conflicts with the model's ``model.json`` is refused, naming both
``max_epochs``     default epochs of a training request (``5``); a request's ``max_epochs`` wins
``val_fraction``   default share of the labelled images held out for validation (``0``: validate on
                   the training images)
``device``         ``cpu``/``cuda``... for training (default: the bundle's choice)
``pretrained``     the released model used while the bundle has no trained model of its own (default
                   ``isbi2015``); ``none``: random weights until the first training round
=================  =====================================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monai_ceph.data import check_spacing
from monai_ceph.data.locations import DEFAULT_PRETRAINED, default_bundle_dir, pretrained_dir
from monai_ceph.data.landmark_sets import LandmarkSet, get_landmark_set
from monai_ceph.transforms import MODEL_SPATIAL_SIZE

__all__ = ["DEFAULT_SPACING", "DEFAULT_MAX_EPOCHS", "CephAppConfig", "parse_numbers"]

DEFAULT_SPACING = (0.1, 0.1)
"""mm/pixel assumed for JPEG/PNG/BMP studies when ``--conf spacing`` is not given (ISBI 2015's scanner)."""

DEFAULT_MAX_EPOCHS = 5


def parse_numbers(value, key: str, cast=float) -> list:
    """``"64,80"``, ``"[64, 80]"``, ``"0.1"`` or a number/list as a list of ``cast`` values; errors name ``key``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else [v for v in text.replace(" ", ",").split(",") if v]
        except json.JSONDecodeError:
            raise ValueError(f"--conf {key} {value!r}: not a list of numbers.") from None
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        return [cast(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"--conf {key} {value!r}: not a list of numbers.") from None


def _default_bundle() -> Path | None:
    bundle = default_bundle_dir()
    return bundle if (bundle / "configs" / "train.json").is_file() else None


def _models_dir(bundle: Path, pretrained: str) -> Path:
    """``<bundle>/models`` when it holds a trained model, else the released model ``pretrained``'s folder (when
    installed and not ``"none"``)."""
    own = bundle / "models"
    if (own / "model.pt").is_file() or pretrained.lower() == "none":
        return own
    try:
        return pretrained_dir(pretrained)
    except FileNotFoundError:
        return own
    except ValueError as e:
        raise ValueError(f"--conf pretrained {pretrained!r}: {e}") from None


def _trained_spatial_size(models: Path) -> tuple[int, int] | None:
    path = models / "model.json"
    if not path.is_file():
        return None
    try:
        size = json.loads(path.read_text()).get("spatial_size")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the model's settings: {e}") from e
    return None if size is None else tuple(int(s) for s in size)


@dataclass(frozen=True)
class CephAppConfig:
    """Settings of one app instance (see the module docstring for the ``--conf`` keys)."""

    bundle: Path
    spacing: tuple[float, float]
    spacing_source: str
    spatial_size: tuple[int, int]
    max_epochs: int
    val_fraction: float
    device: str | None = None
    models_dir: Path | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, str] | None) -> CephAppConfig:
        """Read the ``--conf`` pairs; raise ``ValueError`` naming the key at fault."""
        conf = dict(conf or {})
        bundle = conf.get("bundle")
        path = Path(os.path.expanduser(bundle)).resolve() if bundle else _default_bundle()
        if path is None:
            raise ValueError("no bundle: start the server with --conf bundle <folder of the cephres bundle>.")
        for name in ("train.json", "inference.json"):
            if not (path / "configs" / name).is_file():
                raise ValueError(f"--conf bundle {path}: no configs/{name} in it.")
        if "spacing" in conf:
            values = check_spacing(parse_numbers(conf["spacing"], "spacing"), "--conf spacing")
            spacing = (float(values[0]), float(values[1]))
            source = "conf"
        else:
            spacing, source = DEFAULT_SPACING, "default"
        models = _models_dir(path, str(conf.get("pretrained", DEFAULT_PRETRAINED)))
        trained = _trained_spatial_size(models)
        size = conf.get("spatial_size")
        spatial_size = tuple(parse_numbers(size, "spatial_size", int)) if size else (trained or tuple(MODEL_SPATIAL_SIZE))
        if len(spatial_size) != 2 or min(spatial_size) <= 0:
            raise ValueError(f"--conf spatial_size {size!r}: expected two positive sizes (width, height).")
        if trained is not None and spatial_size != trained:
            raise ValueError(f"--conf spatial_size {size!r}: the model in {models} was trained at "
                             f"{trained[0]},{trained[1]} (its model.json); leave spatial_size out or pass that.")
        max_epochs = int(conf.get("max_epochs", DEFAULT_MAX_EPOCHS))
        val_fraction = float(conf.get("val_fraction", 0.0))
        return cls(path, spacing, source, spatial_size, max_epochs, val_fraction, conf.get("device") or None, models)

    @property
    def name(self) -> str:
        """The model's name in MONAI Label (``/infer/<name>``, ``/train/<name>``): the bundle folder's name."""
        return self.bundle.name

    @property
    def config_files(self) -> list[str]:
        """``train.json`` then the ``inference.json`` overlay."""
        return [str(self.bundle / "configs" / "train.json"), str(self.bundle / "configs" / "inference.json")]

    @property
    def train_config(self) -> str:
        return str(self.bundle / "configs" / "train.json")

    @property
    def meta_file(self) -> str:
        return str(self.bundle / "configs" / "metadata.json")

    @property
    def own_models_dir(self) -> Path:
        """Where the app's train task writes: ``<bundle>/models``."""
        return self.bundle / "models"

    def overrides(self) -> dict:
        """Overrides applied to every bundle config the app loads (``ckpt_dir``: :attr:`models_dir`, the bundle's
        own models or, while it has none, the released model's)."""
        overrides = {"bundle_root": str(self.bundle), "spatial_size": list(self.spatial_size)}
        if self.models_dir is not None:
            overrides["ckpt_dir"] = str(self.models_dir)
        if self.device is not None:
            overrides["device"] = f"$torch.device({self.device!r})"
        return overrides

    def parser(self):
        """A ``ConfigParser`` over ``train.json`` + ``inference.json`` with :meth:`overrides`."""
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(self.config_files)
        parser.update(self.overrides())
        return parser

    def landmark_set(self, parser=None) -> LandmarkSet:
        """The bundle's ``landmark_set``."""
        parser = parser if parser is not None else self.parser()
        return get_landmark_set(parser.get_parsed_content("landmark_set"))

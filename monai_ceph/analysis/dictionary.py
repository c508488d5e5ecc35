"""Dictionary-based wrapper of :py:class:`monai_ceph.analysis.CephalometricMeasurements`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.transforms.transform import MapTransform
from monai.utils import ensure_tuple_rep

from monai_ceph.data import LandmarkSet

from .array import CephalometricMeasurements

__all__ = ["CephalometricMeasurementsd", "CephalometricMeasurementsD", "CephalometricMeasurementsDict"]


class CephalometricMeasurementsd(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`monai_ceph.analysis.CephalometricMeasurements`: reads the landmarks of
    each key (source pixels, as ``LandmarksToSourced`` leaves ``"pred_landmarks"`` in the bundle's
    post-processing) and the mm/pixel spacing under ``spacing_key`` (the source spacing there), and writes the
    ``{name: value}`` measurements under ``measurements_keys`` and the ``{name: class}`` classes under
    ``classes_keys``. A key whose landmarks are None (e.g. no ground truth at inference) gets None.

    Typical post-processing, after ``LandmarksToSourced(keys=["pred_landmarks", "landmarks"], ...)``::

        CephalometricMeasurementsd(keys="pred_landmarks", spacing_key="spacing")

    Args:
        keys: landmark keys. See also: :py:class:`monai.transforms.compose.MapTransform`
        spacing_key: the key of the (2,) mm/pixel spacing, or None (then only angles and ratios are finite).
        landmark_set: names the landmarks.
        names: the measurements to compute; None for all.
        measurements_keys: output keys of the measurements, one per key (a single name is repeated only when
            there is one key); default ``"measurements"``.
        classes_keys: output keys of the classes, likewise; default ``"classes"``.
        reasons_keys: output keys of the ``{name: why NaN}`` reasons, or None not to write them.
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = CephalometricMeasurements.backend

    def __init__(
        self,
        keys: KeysCollection = "pred_landmarks",
        spacing_key: str | None = "spacing",
        landmark_set: str | LandmarkSet = "isbi2015",
        names: Sequence[str] | None = None,
        measurements_keys: KeysCollection = "measurements",
        classes_keys: KeysCollection = "classes",
        reasons_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        n = len(self.keys)
        self.measurements_keys = ensure_tuple_rep(measurements_keys, n)
        self.classes_keys = ensure_tuple_rep(classes_keys, n)
        self.reasons_keys = None if reasons_keys is None else ensure_tuple_rep(reasons_keys, n)
        outputs = [*self.measurements_keys, *self.classes_keys, *(self.reasons_keys or ())]
        if len(set(outputs)) != len(outputs):
            raise ValueError(f"output keys {outputs} repeat: give measurements_keys / classes_keys per key.")
        self.spacing_key = spacing_key
        self.measurer = CephalometricMeasurements(landmark_set, names)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        spacing = None
        if self.spacing_key is not None:
            if self.spacing_key not in d:
                raise KeyError(f"spacing key {self.spacing_key!r} is not in the data (keys: {list(d)}).")
            spacing = d[self.spacing_key]
        r_keys = self.reasons_keys or (None,) * len(self.keys)
        for key, m_key, c_key, r_key in self.key_iterator(d, self.measurements_keys, self.classes_keys, r_keys):
            reasons = None
            if d[key] is None:
                d[m_key] = d[c_key] = None
            else:
                try:
                    d[m_key], d[c_key] = self.measurer(d[key], spacing)
                except ValueError as e:
                    raise ValueError(f"key {key!r}: {e}") from e
                reasons = self.measurer.reasons
            if r_key is not None:
                d[r_key] = reasons
        return d


CephalometricMeasurementsD = CephalometricMeasurementsDict = CephalometricMeasurementsd

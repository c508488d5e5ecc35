"""A MONAI Label local datastore for radiographs and landmark labels.

It is MONAI Label's ``LocalDatastore`` with these differences:

- it lists JPG/JPEG/PNG/BMP/TIFF/DICOM files in any letter case (MONAI Label's default misses ``.jpeg``,
  ``.bmp``, ``.dcm`` and upper-case suffixes);
- an added image must be an image (an image suffix, and its pixels decode): anything else is refused with
  HTTP 400 ``... not an image (...)`` and nothing is added;
- a label must be a ``.json`` landmark label of the bundle's set (checked with
  :func:`~monai_ceph.data.parse_monailabel_label`) whose landmarks lie inside its image: a malformed label or a
  landmark outside the image is refused (HTTP 400 naming the landmark and the image size) before it is stored,
  so the stored label is kept and the next training round does not break;
- image ids and label tags must be plain names, and an unknown image is a 404: MONAI Label would write
  ``../x`` outside the datastore and answer 500 for an unknown image;
- a refused upload is removed from the system temporary folder (MONAI Label removes it only after a success);
- nothing is destroyed: ``DELETE /datastore/image`` (the image and its labels), ``DELETE /datastore/label`` and a
  label saved over another move the previous files into the studies folder's history (:mod:`.history`, restorable);
  ``PUT /datastore/image`` of an image id that exists keeps the old file there too, and is refused (HTTP 409 naming
  the image and its labels) when the image has labels, which a new image would orphan; deleting an unknown image or
  label is a 404.
"""

from __future__ import annotations

import json
import os
import re

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore

from monai_ceph.apps.monailabel.errors import http_status
from monai_ceph.apps.monailabel.history import History
from monai_ceph.apps.monailabel.images import check_image_file, check_landmarks_inside, image_size, remove_upload
from monai_ceph.data import IMAGE_SUFFIXES, DataFileError, LandmarkSet, parse_monailabel_label

__all__ = ["IMAGE_PATTERNS", "check_name", "LandmarkDatastore"]

IMAGE_PATTERNS = tuple(f"*{s}" for suffix in IMAGE_SUFFIXES for s in (suffix, suffix.upper()))
"""File patterns of the radiographs the datastore lists (added to ``MONAI_LABEL_DATASTORE_FILE_EXT``)."""

_NAME = re.compile(r"^[^/\\\x00.][^/\\\x00]*$")


def check_name(value, what: str) -> str:
    """``value`` if it is a plain file name (no ``/`` or ``\\``, not starting with ``.``), else HTTP 400."""
    if not isinstance(value, str) or not _NAME.match(value) or len(value) > 255:
        raise HTTPException(status_code=400, detail=f"{what} {value!r} must be a plain name (no path separators, "
                            "not starting with '.').")
    return value


class LandmarkDatastore(LocalDatastore):
    """``LocalDatastore`` over a folder of radiographs whose ``.json`` labels are landmark labels.

    Args:
        datastore_path: the studies folder.
        landmark_set: the set every landmark label must belong to.
        kwargs: passed to ``LocalDatastore`` (``extensions`` defaults to MONAI Label's setting plus
            :data:`IMAGE_PATTERNS`).
    """

    def __init__(self, datastore_path: str, landmark_set: LandmarkSet, **kwargs) -> None:
        self.landmark_set = landmark_set
        patterns = [*settings.MONAI_LABEL_DATASTORE_FILE_EXT, *IMAGE_PATTERNS]
        kwargs.setdefault("extensions", list(dict.fromkeys(patterns)))
        super().__init__(datastore_path, **kwargs)
        self.history = History(datastore_path)

    def _list_files(self, path, patterns):
        """MONAI Label's file listing; in a label folder it also lists the ``.json`` landmark labels, so that a
        label put back on disk (a restore from the history) is indexed again when the datastore refreshes."""
        labels = os.path.realpath(self._datastore.label_path(None))
        if os.path.realpath(path).startswith(labels + os.sep):
            patterns = [*patterns, "*.json"]
        return super()._list_files(path, patterns)

    def has_image(self, image_id: str) -> bool:
        """Whether ``image_id`` names an image of the datastore whose file exists."""
        uri = self.get_image_uri(image_id) if isinstance(image_id, str) else ""
        return bool(uri) and os.path.isfile(uri)

    def add_image(self, image_id: str, image_filename: str, image_info: dict) -> str:
        try:
            check_name(image_id, "image id")
            check_image_file(image_filename, f"image {image_id!r}")
            self.check_replace(image_id)
        except DataFileError as e:
            remove_upload(image_filename)
            raise HTTPException(status_code=http_status(e), detail=str(e)) from None
        except HTTPException:
            remove_upload(image_filename)
            raise
        self.history.keep(self.image_files(image_id), f"image {image_id!r} replaced (PUT /datastore/image)")
        return super().add_image(image_id, image_filename, image_info)

    def image_files(self, image_id: str) -> list[str]:
        """The files of the studies folder that are image ``image_id`` (``<id><image suffix>``, any letter case)."""
        folder = self._datastore.image_path()
        return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                      if os.path.splitext(name)[0] == image_id and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
                      and os.path.isfile(os.path.join(folder, name)))

    def label_files(self, image_id: str, tag: str | None = None) -> list[str]:
        """The label files of image ``image_id`` (``labels/<tag>/<id>.<suffix>``: one suffix, so image ``a``'s are
        not image ``a.b``'s), of every tag unless ``tag`` is given."""
        labels = self._datastore.label_path(None)
        tags = [tag] if tag is not None else sorted(os.listdir(labels)) if os.path.isdir(labels) else []
        found = []
        for t in tags:
            folder = os.path.join(labels, t)
            if os.path.isdir(folder):
                found += [os.path.join(folder, name) for name in sorted(os.listdir(folder))
                          if os.path.splitext(name)[0] == image_id and os.path.isfile(os.path.join(folder, name))]
        return found

    def check_replace(self, image_id: str) -> None:
        """HTTP 409 naming the image and its labels when ``image_id`` exists and has labels (a new image would
        orphan them)."""
        if not self.image_files(image_id):
            return
        labels = [os.path.relpath(p, self._datastore.image_path()) for p in self.label_files(image_id)]
        if labels:
            raise HTTPException(status_code=409, detail=(
                f"image {image_id!r} exists and has labels ({', '.join(labels)}): a new image would orphan them. "
                f"Delete the image first (DELETE /datastore/image?id={image_id} keeps it and its labels in the "
                "history) or upload it under another id."))

    def remove_image(self, image_id: str) -> None:
        """Move the image and all its labels into the history (one version), then drop them from the index."""
        check_name(image_id, "image id")
        files = self.image_files(image_id)
        if not files:
            raise HTTPException(status_code=404, detail=f"no image {image_id!r} in the datastore.")
        reason = f"image {image_id!r} deleted (DELETE /datastore/image)"
        self.history.keep([*files, *self.label_files(image_id)], reason)
        self.refresh()  # the index forgets what is no longer on disk (LocalDatastore would delete the files)

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Move the label into the history, then drop it from the index."""
        check_name(label_id, "image id")
        check_name(label_tag, "label tag")
        files = self.label_files(label_id, label_tag)
        if not files:
            raise HTTPException(status_code=404,
                                detail=f"no label {label_tag!r} of image {label_id!r} in the datastore.")
        self.history.keep(files, f"label {label_tag!r} of image {label_id!r} deleted (DELETE /datastore/label)")
        self.refresh()

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict) -> str:
        try:
            check_name(image_id, "image id")
            check_name(label_tag, "label tag")
            if not self.has_image(image_id):
                raise HTTPException(status_code=404, detail=f"no image {image_id!r} in the datastore.")
            self.check_label(label_filename, image_id)
        except HTTPException:
            remove_upload(label_filename)
            raise
        self.history.keep(self.label_files(image_id, label_tag), f"label {label_tag!r} of image {image_id!r} replaced")
        return super().save_label(image_id, label_filename, label_tag, label_info)

    def update_image_info(self, image_id: str, info: dict) -> None:
        """MONAI Label's, with 404 for an unknown image (MONAI Label: 500)."""
        check_name(image_id, "image id")
        if not self.has_image(image_id):
            raise HTTPException(status_code=404, detail=f"no image {image_id!r} in the datastore.")
        super().update_image_info(image_id, info)

    def update_label_info(self, label_id: str, label_tag: str, info: dict) -> None:
        """MONAI Label's, with 404 for an unknown label (MONAI Label: 500)."""
        check_name(label_id, "image id")
        check_name(label_tag, "label tag")
        if not self.label_files(label_id, label_tag):
            raise HTTPException(status_code=404,
                                detail=f"no label {label_tag!r} of image {label_id!r} in the datastore.")
        super().update_label_info(label_id, label_tag, info)

    def check_label(self, label_filename: str, image_id: str) -> None:
        """HTTP 400 naming the fault unless the file is a landmark label of :attr:`landmark_set` whose landmarks
        lie inside the image ``image_id``."""
        where = f"label for image {image_id!r}"
        if not label_filename.lower().endswith(".json"):
            suffix = os.path.splitext(label_filename)[1] or "no suffix"
            raise HTTPException(status_code=400, detail=f"{where}: a {suffix} file, expected a .json landmark label.")
        try:
            with open(label_filename, encoding="utf-8-sig") as f:
                data = json.load(f)
            label = parse_monailabel_label(data, self.landmark_set, where)
            check_landmarks_inside(label.landmarks, image_size(self.get_image_uri(image_id)), self.landmark_set, where)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HTTPException(status_code=400, detail=f"{where}: not valid JSON ({e}).") from None
        except DataFileError as e:
            raise HTTPException(status_code=400, detail=str(e)) from None

"""MONAI Label app: predict, correct and learn cephalometric landmarks.

Start it with (see README.md beside this file)::

    monailabel start_server --app <this folder> --studies <folder of radiographs> --conf bundle <bundles/cephres>

MONAI Label loads this file as the module ``main`` and instantiates the class below, which must stay a direct
subclass of ``MONAILabelApp``; everything else is imported from the package by absolute name, so a copy of this
file in any folder works as an app folder too.
"""

from __future__ import annotations

import logging
import os
import tempfile

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.apps.monailabel.datastore import LandmarkDatastore
from monai_ceph.apps.monailabel.infer import CephLandmarkInfer
from monai_ceph.apps.monailabel.train import CephLandmarkTrain
from monai_ceph.data import DataFileError

__all__ = ["CephalometricApp"]

logger = logging.getLogger(__name__)


def _inside(path: str, folder: str | None) -> bool:
    if not folder:
        return False
    folder = os.path.realpath(folder)
    return os.path.commonpath([os.path.realpath(path), folder]) == folder


class CephalometricApp(MONAILabelApp):
    """Landmark detection on lateral cephalograms with a monai_ceph bundle (``--conf bundle``, default cephres).

    - ``/infer/<model>?image=<id>``: the landmarks of an image as JSON (see :mod:`.infer`);
    - ``PUT /datastore/label?image=<id>``: store corrected landmarks (a JSON label, checked; see
      :mod:`monai_ceph.data.monailabel`);
    - ``POST /train/<model>``: fine-tune the bundle on the stored labels (see :mod:`.train`);
    - ``/info``: the model, its training statistics and the landmark set (names, abbreviations, groups).

    ``<model>`` is the bundle folder's name (``cephres``).
    """

    def __init__(self, app_dir: str, studies: str, conf: dict) -> None:
        self.app_config = CephAppConfig.from_conf(conf)
        self.landmark_set = self.app_config.landmark_set()
        if self.app_config.spacing_source == "default":
            logger.warning(f"no --conf spacing: JPEG/PNG/BMP images are taken as {self.app_config.spacing} "
                           "mm/pixel (DICOM images use their header).")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai_ceph cephalometric landmarks",
            description=f"{len(self.landmark_set)} {self.landmark_set.name} landmarks on lateral cephalograms: "
            "predict, correct, fine-tune",
            version="0.1.0",
        )

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        from monailabel.config import settings

        return LandmarkDatastore(
            self.studies,
            landmark_set=self.landmark_set,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def init_infers(self) -> dict[str, InferTask]:
        return {self.app_config.name: CephLandmarkInfer(self.app_config)}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {self.app_config.name: CephLandmarkTrain(self.app_config)}

    def info(self) -> dict:
        info = super().info()
        lms = self.landmark_set
        info["landmarks"] = {
            "landmark_set": lms.name,
            "abbreviations": list(lms.abbreviations),
            "names": list(lms.names),
            "groups": {group: list(members) for group, members in lms.groups.items()},
            "spacing": {"default": list(self.app_config.spacing), "source": self.app_config.spacing_source},
            "spatial_size": list(self.app_config.spatial_size),
            "bundle": str(self.app_config.bundle),
        }
        return info

    def check_image(self, request: dict) -> None:
        """HTTP 404/400 unless ``request["image"]`` is a datastore image id, an uploaded file or a session image.

        MONAI Label itself opens any existing path given as ``image`` (``../../etc/passwd``) and answers 500 for an
        unknown id; uploads arrive as files directly in the system temporary folder, session images inside the
        sessions folder.
        """
        image = request.get("image")
        if not isinstance(image, str) or not image:
            raise HTTPException(status_code=400, detail="no image: give ?image=<datastore id> or upload a file.")
        datastore = self.datastore()
        if isinstance(datastore, LandmarkDatastore):
            if datastore.has_image(image):
                return
        elif datastore.get_image_uri(image):
            return
        if os.path.isfile(image):
            if os.path.dirname(os.path.realpath(image)) == os.path.realpath(tempfile.gettempdir()):
                return  # an upload (POST /infer/<model> with a file)
            sessions = self.sessions()
            if request.get("session") and _inside(image, getattr(sessions, "store_path", None)):
                return
        if os.sep in image or "/" in image or image.startswith("."):
            raise HTTPException(status_code=400, detail=f"image {image!r}: give a datastore image id, not a path.")
        raise HTTPException(status_code=404, detail=f"no image {image!r} in the datastore.")

    def infer(self, request: dict, datastore=None) -> dict:
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"no model {model!r}; models: {sorted(self._infers)}.")
        self.check_image(request)
        try:
            return super().infer(request, datastore)
        except DataFileError as e:  # e.g. a bad "spacing" param, a DICOM image that is not DICOM
            raise HTTPException(status_code=400, detail=str(e)) from None

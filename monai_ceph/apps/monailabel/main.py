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
from contextlib import contextmanager

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

from monai_ceph.apps.monailabel.auth import configured_token, install_token_guard
from monai_ceph.apps.monailabel.client import mount_client
from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.apps.monailabel.datastore import LandmarkDatastore
from monai_ceph.apps.monailabel.errors import SetupError, http_status, input_error, setup_error
from monai_ceph.apps.monailabel.images import check_image_file, is_upload, remove_upload
from monai_ceph.apps.monailabel.infer import CephLandmarkInfer
from monai_ceph.apps.monailabel.params import check_infer_params
from monai_ceph.apps.monailabel.train import CephLandmarkTrain
from monai_ceph.data import DataFileError

__all__ = ["CephalometricApp"]

logger = logging.getLogger(__name__)


@contextmanager
def _client_errors():
    """A failure caused by the client's input (:func:`~.errors.input_error`) becomes HTTP 4xx with its message; a
    :class:`~.errors.SetupError` or another input error (:func:`~.errors.setup_error`: a bundle file the server
    cannot use) HTTP 500 with its message."""
    try:
        yield
    except HTTPException:
        raise
    except SetupError as e:
        raise HTTPException(status_code=500, detail=str(e)) from None
    except Exception as e:
        error = input_error(e)
        if error is None:
            setup = setup_error(e)  # e.g. the bundle's model.pt is of another network: 500 naming it
            if setup is not None:
                raise HTTPException(status_code=500, detail=str(setup)) from None
            raise
        raise HTTPException(status_code=http_status(error), detail=str(error)) from None


def _check_model(model, tasks: dict) -> None:
    if model not in tasks:
        raise HTTPException(status_code=404, detail=f"no model {model!r}; models: {sorted(tasks)}.")


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
        self.token = configured_token(conf)
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
        mount_client()  # the browser client at /client/ (see client.py)

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
        self.infer_tasks = {self.app_config.name: CephLandmarkInfer(self.app_config)}
        return self.infer_tasks

    def init_trainers(self) -> dict[str, TrainTask]:
        self.train_tasks = {self.app_config.name: CephLandmarkTrain(self.app_config)}
        return self.train_tasks

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

    def check_image(self, request: dict) -> str:
        """The file of ``request["image"]``: a datastore image id, this request's upload or a session image.

        MONAI Label itself opens any existing path given as ``image`` (``../../etc/passwd``) and answers 500 for an
        unknown id; uploads arrive as files just written directly in the system temporary folder
        (:func:`~.images.is_upload`: any other file there is refused), session images inside the sessions folder.
        The file must be an image whose pixels decode. Raises HTTP 400/404 naming the image and the fault.
        """
        image = request.get("image")
        if not isinstance(image, str) or not image:
            raise HTTPException(status_code=400, detail="no image: give ?image=<datastore id> or upload a file.")
        datastore = self.datastore()
        if isinstance(datastore, LandmarkDatastore) and datastore.has_image(image):
            path, where = datastore.get_image_uri(image), f"image {image!r}"
        elif not isinstance(datastore, LandmarkDatastore) and datastore.get_image_uri(image):
            return image
        elif is_upload(image):
            path, where = image, f"uploaded file ({os.path.splitext(image)[1] or 'no suffix'})"
        elif request.get("session") and os.path.isfile(image) and _inside(image, self.sessions_folder()):
            path, where = image, "session image"
        elif os.sep in image or "/" in image or image.startswith("."):
            raise HTTPException(status_code=400, detail=f"image {image!r}: give a datastore image id, not a path.")
        else:
            raise HTTPException(status_code=404, detail=f"no image {image!r} in the datastore.")
        try:
            check_image_file(path, where)
        except DataFileError as e:
            raise HTTPException(status_code=http_status(e), detail=str(e)) from None
        return path

    def infer(self, request: dict, datastore=None) -> dict:
        """MONAI Label's inference with the app's checks; a client's mistake is a 4xx naming it, never a 500, and
        an upload is removed from the temporary folder when the request fails."""
        try:
            _check_model(request.get("model"), self.infer_tasks)
            self.check_image(request)
            with _client_errors():  # e.g. a bad "spacing" param, a DICOM image that is not DICOM
                return super().infer(request, datastore)
        except BaseException:
            remove_upload(request.get("image"))
            raise

    def sessions_folder(self) -> str | None:
        sessions = self.sessions()
        return getattr(sessions, "store_path", None)

    def server_mode(self, mode: bool) -> None:
        super().server_mode(mode)
        self.serving = mode
        if mode:
            check_infer_params()  # a params field that is not a JSON object: 400, not MONAI Label's 500
            if install_token_guard(self.token):  # write requests need "Authorization: Bearer <token>" (auth.py)
                logger.info("write requests need the token (--conf token / MONAI_CEPH_TOKEN).")
            else:
                logger.warning("no token (--conf token / MONAI_CEPH_TOKEN): anyone who reaches this server can "
                               "change its datastore and train; bind it to 127.0.0.1.")

    def train(self, request: dict) -> dict:
        """MONAI Label's training. In the server (``POST /train/<model>?run_sync=true``) a mistake in the request or
        the labels is a 400 naming it; in MONAI Label's training subprocess the error's last line names it."""
        if not getattr(self, "serving", False):
            return super().train(request)
        _check_model(request.get("model"), self.train_tasks)
        with _client_errors():
            return super().train(request)

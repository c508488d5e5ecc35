from .landmark_sets import (
    AARIZ,
    AARIZ_TO_ISBI2015,
    ISBI2015,
    LANDMARK_SETS,
    LandmarkSet,
    get_landmark_set,
    map_landmarks,
)
from .locations import ISBI_ENV, isbi_dir
from .readers import (
    IMAGE_SUFFIXES,
    DataFileError,
    LandmarkFileError,
    LandmarkRecord,
    MissingLandmarkWarning,
    SpacingError,
    check_spacing,
    match_landmark,
    points_from_json,
    points_to_json,
)
from .isbi import (
    ISBI2015_CSVS,
    ISBI2015_SPACING,
    ISBI2015_SPLITS,
    load_isbi2015,
    load_isbi2015_original,
    read_isbi_csv,
    read_isbi_txt,
)
from .aariz import AARIZ_MAPPING_CSV, AARIZ_TITLES, load_aariz, read_aariz_json, read_aariz_pixel_sizes
from .labelme import load_labelme, read_labelme_json
from .dicom import DICOM_SPACING_TAGS, read_dicom_spacing
from .image_io import DICOM_SUFFIXES, RadiographReader, is_dicom
from .cache import CACHE_SAFE_GLOBALS, SafePersistentDataset
from .monailabel import (
    MonaiLabelLandmarks,
    load_monailabel,
    monailabel_datalist,
    monailabel_label,
    monailabel_records,
    parse_monailabel_label,
    read_monailabel_json,
    write_monailabel_json,
)

# The datalist builder is also a command (`python -m monai_ceph.data.datalist`): importing it (or the phantom
# writer, which uses it) here eagerly would make runpy warn that the module was imported before it ran, so
# their names are resolved on first use.
_LAZY = {
    "datalist": (
        "DATALIST_KEYS",
        "DATASET_FORMATS",
        "DEFAULT_FRACTIONS",
        "STANDARD_SPLITS",
        "build_datalist",
        "datalist_from_records",
        "load_records",
        "split_records",
        "write_datalist",
    ),
    "phantom": ("ISBI2015_TEMPLATE", "PHANTOM_SPATIAL_SIZE", "make_phantom", "write_phantom_dataset"),
}


def __getattr__(name):
    for module, names in _LAZY.items():
        if name in names:
            from importlib import import_module

            return getattr(import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
from .sources import check_datalist, check_section, detect_format, image_folder_datalist, load_datalist

from .quiet import quiet_startup_noise

quiet_startup_noise()

from .landmark_sets import (
    AARIZ,
    AARIZ_TO_ISBI2015,
    ISBI2015,
    LANDMARK_SETS,
    LandmarkSet,
    get_landmark_set,
    map_landmarks,
)
from .atomic import atomic_write_bytes, atomic_write_text
from .json_io import dump_json, dumps_json, json_safe
from .locations import ISBI_ENV, isbi_dir
from .readers import (
    IMAGE_SUFFIXES,
    DataFileError,
    LandmarkFileError,
    LandmarkRecord,
    MissingLandmarkWarning,
    DICOM_SUFFIXES,
    LandmarkCollector,
    PLAUSIBLE_SPACING_MM,
    SpacingError,
    check_spacing,
    is_dicom,
    landmarks_from_json,
    landmarks_to_json,
    match_landmark,
    parse_landmark,
    points_from_json,
    points_to_json,
    read_json,
    resolve_spacing,
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
from .image_io import RadiographReader
from .cache import CACHE_SAFE_GLOBALS, SafePersistentDataset
from .tolerant import FAILURE_KEY, FailureTolerantDataLoader, failure_reason
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

from .datalist import (
    DATALIST_KEYS,
    DATASET_FORMATS,
    DEFAULT_FRACTIONS,
    STANDARD_SPLITS,
    build_datalist,
    datalist_from_records,
    load_records,
    split_records,
    write_datalist,
)
from .phantom import ISBI2015_TEMPLATE, PHANTOM_SPATIAL_SIZE, make_phantom, write_phantom_dataset
from .sources import (
    Datalist,
    LazyDatalist,
    check_datalist,
    check_section,
    datalist_landmark_set,
    detect_format,
    image_folder_datalist,
    load_datalist,
)

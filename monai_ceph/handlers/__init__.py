from .evaluation_report import EvaluationReport
from .landmark_writer import LandmarkWriter, landmark_table
from .overlay_saver import OverlaySaver, render_overlay
from .radial_error import RadialError
from .checkpoint import BestMetricState, PruneCheckpoints, latest_checkpoint
from .time_limit import TimeLimit
from .model_settings import ModelSettingsWriter, check_model_settings, model_settings
from .uncertainty import UncertaintyCalibrationSaver, UncertaintyRecords, uncertainty_summary
from .batch_summary import FAILED_FILENAME, BatchSummary
from .output_lock import LOCK_FILENAME, OutputFolderBusyError, hold_output_folder
from .provenance import PHANTOM_WARNING, model_description, model_provenance, result_warnings
from .finetune import adopt_side_files, finetune_checkpoint, finetune_dir, finetune_spatial_size

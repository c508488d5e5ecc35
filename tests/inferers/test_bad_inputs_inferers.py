"""Bad-input catalogue, inferers lane: a radiograph that does not face the way the model expects is either turned
upright (and the item says so) or, for the orientations an inferer is told to refuse, refused with a message that
names the file, what it looks like and the scores; bad settings are refused when built."""

import pytest
import torch
from monai.data import MetaTensor
from test_orientation import CODEC, FacingOracle, upright_image  # tests/inferers is on the path, as apps' ml_server

from monai_ceph.inferers import OrientationInferer, UnexpectedOrientationError, from_upright
from monai_ceph.transforms import GaussianHeatmapCodec

FILE = "/data/ceph_017.png"


def _batch(name):
    return MetaTensor(from_upright(upright_image(), name)[None], meta={"filename_or_obj": [FILE]})


@pytest.mark.parametrize("name", ["rotated 90", "rotated 270"])
def test_a_refused_orientation_names_the_file_and_what_it_looks_like(name):
    inferer = OrientationInferer(
        codec=CODEC, orientations=["mirrored", "rotated 90", "rotated 180", "rotated 270"],
        refuse=["rotated 90", "rotated 270"],
    )
    batch = _batch(name)
    before = batch.clone()
    with pytest.raises(UnexpectedOrientationError, match=f"{FILE}: the radiograph looks {name} \\(mean landmark "
                                                         "confidence: as given 0\\.[0-9]+, mirrored") as err:
        inferer(batch, FacingOracle())
    assert "Turn the image upright" in str(err.value) and isinstance(err.value, ValueError)
    assert torch.equal(batch, before)  # the input is left as it was
    # the orientations it was not told to refuse are corrected
    assert inferer(_batch("rotated 180"), FacingOracle())["orientation"] == ["rotated 180"]


def test_a_mirrored_radiograph_is_corrected_not_refused():
    out = OrientationInferer(codec=CODEC)(_batch("mirrored"), FacingOracle())
    assert out["orientation"] == ["mirrored"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"orientations": ["upside down"]}, "unknown orientation 'upside down'"),
        ({"refuse": ["sideways"]}, "unknown orientation 'sideways'"),
        ({"refuse": ["as given"]}, "'as given' cannot be refused"),
        ({"margin": -0.1}, "margin must be >= 0"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OrientationInferer(**kwargs)


def test_heatmaps_that_cannot_be_turned_back_exactly_are_refused():
    """At output stride 4 an input of 30 pixels has heatmaps of 8: a mirror would shift them by half a pixel."""
    inferer = OrientationInferer(codec=GaussianHeatmapCodec(stride=4))
    with pytest.raises(ValueError, match=r"input size \(30, 32\) is not a multiple of the codec's stride 4"):
        inferer(torch.zeros(1, 3, 30, 32), FacingOracle())

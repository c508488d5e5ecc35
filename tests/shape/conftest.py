"""Synthetic shape models whose answers are known."""

import numpy as np
import pytest

from monai_ceph.shape import ShapeModel, Similarity

# eight points of a rough profile (mm), away from any symmetry so that a mirror is detectable
TEMPLATE = np.array(
    [[0.0, 0.0], [60.0, -5.0], [75.0, 20.0], [70.0, 55.0], [55.0, 90.0], [20.0, 95.0], [-10.0, 60.0], [-20.0, 25.0]]
)


def random_similarity(rng) -> Similarity:
    scale = rng.uniform(0.8, 1.25)
    angle = rng.uniform(-0.4, 0.4)
    return Similarity(complex(scale * np.exp(1j * angle)), complex(*rng.uniform(-50, 50, 2)))


@pytest.fixture(scope="session")
def synthetic_shapes():
    """(200, 8, 2) shapes: template + 3 Gaussian modes (SD 4, 2.5, 1.5 mm) + 0.3 mm noise, each under a random
    similarity; and the generating modes."""
    rng = np.random.default_rng(0)
    k = len(TEMPLATE)
    # modes orthogonal to the similarity tangent space of the template (what alignment removes)
    centred = TEMPLATE - TEMPLATE.mean(0)
    tangent = np.stack([np.tile([1.0, 0.0], k), np.tile([0.0, 1.0], k), centred.reshape(-1),
                        (centred[:, ::-1] * [-1.0, 1.0]).reshape(-1)], axis=1)
    q = np.linalg.qr(tangent)[0]
    raw = rng.normal(size=(2 * k, 3))
    modes = np.linalg.qr(raw - q @ (q.T @ raw))[0].T  # (3, 2k) orthonormal
    sd = np.array([4.0, 2.5, 1.5])
    shapes = []
    for _ in range(200):
        shape = TEMPLATE + ((rng.normal(size=3) * sd) @ modes).reshape(k, 2) + rng.normal(scale=0.3, size=(k, 2))
        shapes.append(random_similarity(rng)(shape))
    return np.stack(shapes)


@pytest.fixture(scope="session")
def synthetic_model(synthetic_shapes):
    return ShapeModel.fit(synthetic_shapes, variance_kept=0.98, min_residual_sd=0.25)  # the 3 modes, not the noise


@pytest.fixture(scope="session")
def template():
    return TEMPLATE.copy()


@pytest.fixture(scope="session")
def perfect(synthetic_model):
    """The model's mean shape placed in an image by a random similarity: a shape the model finds perfect."""
    return random_similarity(np.random.default_rng(1))(synthetic_model.mean)

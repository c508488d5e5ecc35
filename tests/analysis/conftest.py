"""A typical ISBI 2015 profile (the mean of the 400 averaged annotations / 10, facing right) to edit per test."""

import numpy as np
import pytest

from monai_ceph.data import AARIZ, ISBI2015

TYPICAL = {
    "S": (81, 104), "N": (140, 97), "Or": (129, 122), "Po": (60, 121), "A": (139, 152), "B": (135, 186),
    "Pog": (135, 199), "Me": (129, 205), "Gn": (133, 203), "Go": (73, 174), "LIT": (143, 170), "UIT": (144, 171),
    "Ls": (156, 161), "Li": (153, 182), "Sn": (150, 149), "Pog'": (145, 201), "PNS": (98, 143), "ANS": (141, 145),
    "Ar": (68, 133),
    # Aariz extras
    "Pn": (165, 135), "N'": (150, 95), "R": (75, 150), "Co": (66, 120), "LPM": (118, 172), "LMT": (104, 174),
    "UPM": (119, 170), "UIA": (128, 140), "UMT": (103, 172), "LIA": (128, 196),
}  # fmt: skip


def make_layout(landmark_set=ISBI2015, **points):
    """(N, 2) float landmarks of ``landmark_set``: TYPICAL with ``points`` replaced (``Pog_`` means ``Pog'``)."""
    table = {**TYPICAL, **{k.replace("_", "'"): v for k, v in points.items()}}
    return np.array([table[a] for a in landmark_set.abbreviations], dtype=np.float64)


@pytest.fixture
def layout():
    return make_layout


@pytest.fixture
def aariz_layout():
    return lambda **points: make_layout(AARIZ, **points)

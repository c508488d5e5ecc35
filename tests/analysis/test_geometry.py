import math

import numpy as np
import pytest

from monai_ceph.analysis import geometry as g

P = lambda x, y: np.array([x, y], dtype=np.float64)  # noqa: E731


def test_vertex_angle_right_angle_and_345_triangle():
    assert g.vertex_angle(P(1, 0), P(0, 0), P(0, 1)) == pytest.approx(90.0)
    # 3-4-5 triangle: the angle opposite the side 3 is asin(3/5)
    assert g.vertex_angle(P(4, 0), P(0, 0), P(4, 3)) == pytest.approx(math.degrees(math.asin(0.6)))
    assert g.vertex_angle(P(1, 0), P(0, 0), P(-1, 0)) == pytest.approx(180.0)


def test_line_angles_signed_clockwise_positive():
    # +x turned towards +y (down on the radiograph) is clockwise: positive
    assert g.signed_line_angle(P(0, 0), P(1, 0), P(0, 0), P(1, 1)) == pytest.approx(45.0)
    assert g.signed_line_angle(P(0, 0), P(1, 0), P(5, 5), P(6, 4)) == pytest.approx(-45.0)
    assert g.line_angle(P(0, 0), P(1, 0), P(5, 5), P(6, 4)) == pytest.approx(45.0)
    # directed lines: reversing one gives the supplement
    assert g.line_angle(P(0, 0), P(1, 0), P(6, 4), P(5, 5)) == pytest.approx(135.0)


def test_distances():
    assert g.distance(P(0, 0), P(3, 4)) == pytest.approx(5.0)
    assert g.signed_distance(P(3, 4), P(0, 0)) == pytest.approx(5.0)
    assert g.signed_distance(P(-3, 4), P(0, 0)) == pytest.approx(-5.0)
    # a point on the line is 0; the anterior side (+x) of a downward line is positive
    assert g.point_line_distance(P(2, 2), P(0, 0), P(4, 4)) == pytest.approx(0.0)
    assert g.point_line_distance(P(3, 7), P(0, 0), P(0, 10)) == pytest.approx(3.0)
    assert g.point_line_distance(P(-3, 7), P(0, 0), P(0, 10)) == pytest.approx(-3.0)
    assert g.projection(P(5, 9), P(2, 1), P(0, 0), P(10, 0)) == pytest.approx(3.0)
    assert g.projection(P(5, 9), P(2, 1), P(0, 0), P(0, -1)) == pytest.approx(-8.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: g.vertex_angle(P(1, 1), P(1, 1), P(0, 1)),
        lambda: g.line_angle(P(0, 0), P(0, 0), P(0, 0), P(1, 1)),
        lambda: g.point_line_distance(P(1, 0), P(2, 2), P(2, 2)),
        lambda: g.projection(P(1, 0), P(0, 0), P(3, 3), P(3, 3)),
    ],
)
def test_coincident_points_raise(call):
    with pytest.raises(g.DegenerateGeometryError, match="coincide"):
        call()


def test_canonical_frame_turns_anterior_to_x_and_inferior_to_y():
    pts = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(g.canonical_frame(pts, (1.0, 0.0), (0.0, 1.0)), pts)  # upright, facing right
    np.testing.assert_array_equal(g.canonical_frame(pts, None, None), pts)  # no axes known: as it is
    np.testing.assert_allclose(g.canonical_frame(pts, (-2.0, 0.0), (0.0, 1.0)), [[-1.0, 2.0], [-3.0, 4.0]])  # left
    np.testing.assert_allclose(g.canonical_frame(pts, (1.0, 0.0), (0.0, -1.0)), [[1.0, -2.0], [3.0, -4.0]])  # upside down
    np.testing.assert_allclose(g.canonical_frame(pts, (0.0, 3.0), (-1.0, 0.0)), [[2.0, -1.0], [4.0, -3.0]])  # turned 90

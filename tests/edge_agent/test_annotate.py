import numpy as np

from edge_agent.annotate import draw_box


def test_label_of_a_box_at_the_right_edge_stays_inside_the_frame():
    image = np.zeros((100, 200, 3), np.uint8)
    draw_box(image, (185, 40, 200, 90), "illegal_car_parking 31s", (0, 0, 255))
    label_rows = image[:40]
    painted = np.nonzero(label_rows.any(axis=2))[1]
    assert painted.min() < 185 - 50, "the label must shift left of the box instead of running off the frame"
    assert (image[:40, -1] != 0).any()  # and still reaches the right edge


def test_draw_box_leaves_the_caller_image_shape():
    image = np.zeros((50, 50, 3), np.uint8)
    draw_box(image, (5, 20, 30, 45), "car 0.9", (0, 255, 0))
    assert image.shape == (50, 50, 3) and image.any()

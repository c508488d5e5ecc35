"""Spatial transforms that carry landmarks."""

# The paper's model input, 736 x 576 (height x width), in MONAI's (dim0=x, dim1=y) order.
MODEL_SPATIAL_SIZE = (576, 736)

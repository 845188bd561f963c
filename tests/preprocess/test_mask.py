import numpy as np

from bratseg.preprocess.mask import brain_mask


def test_brain_mask_fills_holes():
    image = np.zeros((2, 9, 9, 9), np.float32)
    image[0, 2:7, 2:7, 2:7] = 1
    image[0, 4, 4, 4] = 0  # an enclosed hole
    image[1, 1, 1, 1] = 5
    mask = brain_mask(image)
    assert mask[4, 4, 4] and mask[1, 1, 1] and mask.sum() == 5**3 + 1

"""The one path from a cropped brain to the classifier's input.

The app, the command line and the trainer all call these functions, so a
scan is turned into a tensor the same way everywhere:

    crop (uint8, any size, grey or RGB)
      -> :func:`prepare_crop`: grey, resized to size x size (uint8)   [cached by the trainer]
      -> (training only: augmentation, uint8 in and out)
      -> :func:`caffe_normalise`: float32 size x size x 3, ResNet50 "caffe" mode

MRI slices carry no colour information, so every crop is reduced to grey and
the grey channel repeated three times; RGB tints from screenshots or viewers
therefore cannot become a shortcut for the classifier.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.pixels import check_uint8, to_grey
from core.recipe import INPUT_SIZE

#: ImageNet channel means in BGR order, as `keras.applications.resnet50.preprocess_input` uses.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not 32 <= size <= 1024:
        raise ValueError(f"size must be an integer between 32 and 1024. Received: size={size!r}")


def prepare_crop(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Grey and resize a crop.

    image: uint8 HxW, HxWx3 or HxWx4, [0, 255] -> uint8 (size, size), [0, 255].
    Area interpolation when shrinking, bilinear when enlarging; a crop already
    at (size, size) grey is returned unchanged (as a copy).
    """
    _check_size(size)
    check_uint8(image, "image", channels=(1, 3, 4))
    grey = to_grey(image)
    if grey.shape == (size, size):
        return grey.copy()
    shrinking = grey.shape[0] * grey.shape[1] > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(grey, (size, size), interpolation=interpolation)


def caffe_normalise(grey: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W) grey [0, 255] -> float32 (..., H, W, 3), BGR mean-centred, unscaled.

    Equal to `keras.applications.resnet50.preprocess_input` applied to the
    grey image repeated into three RGB channels. Works on one image or a batch;
    never modifies its input.
    """
    if not isinstance(grey, np.ndarray) or grey.dtype != np.uint8:  # any shape: one image or a batch
        raise ValueError(f"Expected uint8 grey pixels. Received: dtype={getattr(grey, 'dtype', None)}")
    return grey.astype(np.float32)[..., None] - CAFFE_MEAN_BGR


def to_model_input(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """A cropped brain -> the classifier's input.

    image: uint8 HxW, HxWx3 or HxWx4, [0, 255] -> float32 (size, size, 3),
    values in about [-124, 152] (ResNet50 caffe preprocessing of the grey crop).
    """
    return caffe_normalise(prepare_crop(image, size))

# Copyright 2026 The image_segmenter_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Image to input tensor, exactly as MediaPipe's ImageToTensorCalculator does it on CPU.

The image is warped with the perspective transform that maps the region of interest's corners
onto the tensor's edges (so output column i samples source x = i * W / w, not pixel centres),
on uint8 data with a replicated border, then mapped linearly to the model's value range.
"""

from functools import lru_cache
import math
import numbers
from typing import Optional, Tuple

import cv2
import numpy as np

SUPPORTED_ROTATIONS = (0, 90, 180, 270)


def validate_rotation(rotation_degrees: int) -> int:
    """Return the rotation normalised to [0, 360) or raise MediaPipe's error."""
    if isinstance(rotation_degrees, bool) or not isinstance(rotation_degrees, numbers.Real):
        raise TypeError('rotation_degrees must be a number, a multiple of 90, got %r.'
                        % (rotation_degrees,))
    if rotation_degrees % 90:
        raise ValueError('Expected rotation to be a multiple of 90°.')
    return int(rotation_degrees) % 360


@lru_cache(maxsize=64)
def warp_matrix(image_width: int, image_height: int, tensor_width: int, tensor_height: int,
                rotation_degrees: int = 0) -> np.ndarray:
    """
    Perspective matrix from image pixels to tensor pixels for the full-image ROI.

    Mirrors ``ConvertToNormalizedRect`` (90/270 swap the ROI's sides) and the OpenCV
    converter (``boxPoints`` of the rotated ROI mapped to the tensor corners), keeping
    MediaPipe's float32 rounding of the angle.
    """
    rotation = np.float32(-rotation_degrees * math.pi / 180.0)
    roi_width, roi_height = float(image_width), float(image_height)
    if rotation_degrees in (90, 270):
        roi_width, roi_height = roi_height, roi_width
    angle = float(np.float32(float(rotation * np.float32(180.0)) / math.pi))
    corners = cv2.boxPoints(((image_width / 2.0, image_height / 2.0),
                             (roi_width, roi_height), angle))
    tensor_corners = np.array([[0, tensor_height], [0, 0], [tensor_width, 0],
                               [tensor_width, tensor_height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), tensor_corners)
    matrix.setflags(write=False)
    return matrix


def value_range_transform(normalization: Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]
                          ) -> Tuple[np.float32, np.float32]:
    """
    Scale and offset from uint8 to the model range given by the metadata's mean and std.

    Same float32 arithmetic as ``GetValueRangeTransformation`` after the range (0 - mean) / std
    to (255 - mean) / std that the Tasks preprocessing derives from channel 0.
    """
    mean, std = (np.float32(normalization[0][0]), np.float32(normalization[1][0]))
    range_min = (np.float32(0.0) - mean) / std
    range_max = (np.float32(255.0) - mean) / std
    scale = (range_max - range_min) / np.float32(255.0)
    offset = range_min
    return np.float32(scale), np.float32(offset)


_REMAP_BLOCK = 32  # OpenCV's BLOCK_SZ in warpPerspective
_INTER_BITS = 5  # OpenCV's INTER_BITS: 1/32-pixel interpolation weights


@lru_cache(maxsize=16)
def warp_maps(image_width: int, image_height: int, tensor_width: int, tensor_height: int,
              rotation_degrees: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """
    Fixed-point sampling maps that make ``cv2.remap`` equal ``cv2.warpPerspective``.

    ``warpPerspective`` recomputes these maps for every frame (a division per pixel); they
    depend only on the sizes, so they are computed once here, with OpenCV's own arithmetic:
    the inverted matrix, per-block origins, and rounding to 1/32 pixel.
    """
    matrix = warp_matrix(image_width, image_height, tensor_width, tensor_height,
                         rotation_degrees)
    m = cv2.invert(matrix)[1].ravel()
    block_height = min(_REMAP_BLOCK // 2, tensor_height)
    block_width = min(_REMAP_BLOCK * _REMAP_BLOCK // block_height, tensor_width)
    rows = np.arange(tensor_height, dtype=np.float64)[:, np.newaxis]
    fixed = np.empty((2, tensor_height, tensor_width), np.float64)
    for x in range(0, tensor_width, block_width):
        offsets = np.arange(min(block_width, tensor_width - x), dtype=np.float64)
        x0 = m[0] * x + m[1] * rows + m[2]
        y0 = m[3] * x + m[4] * rows + m[5]
        w = m[6] * x + m[7] * rows + m[8] + m[6] * offsets
        scale = np.divide(float(1 << _INTER_BITS), w, out=np.zeros_like(w), where=w != 0)
        fixed[0, :, x:x + len(offsets)] = (x0 + m[0] * offsets) * scale
        fixed[1, :, x:x + len(offsets)] = (y0 + m[3] * offsets) * scale
    fixed = np.clip(np.rint(fixed), -2.0 ** 31, 2.0 ** 31 - 1).astype(np.int64)
    coordinates = np.clip(fixed >> _INTER_BITS, -32768, 32767).astype(np.int16)
    fractions = fixed & ((1 << _INTER_BITS) - 1)
    weights_index = (fractions[1] << _INTER_BITS) + fractions[0]
    return np.ascontiguousarray(np.moveaxis(coordinates, 0, -1)), weights_index.astype(np.uint16)


def warp_to_tensor(image: np.ndarray, tensor_width: int, tensor_height: int,
                   rotation_degrees: int = 0) -> np.ndarray:
    """
    Warp a uint8 image (gray, RGB or RGBA) to the tensor grid, replicating the border.

    A channel-reversed view (``bgr[..., ::-1]``) is warped from the buffer it views and the
    small result reversed back, which equals warping an RGB copy (the warp treats channels
    independently) without making one.
    """
    reversed_channels = image.ndim == 3 and image.strides[2] < 0
    source = np.ascontiguousarray(image[:, :, ::-1] if reversed_channels else image)
    coordinates, weights_index = warp_maps(image.shape[1], image.shape[0], tensor_width,
                                           tensor_height, rotation_degrees)
    warped = cv2.remap(source, coordinates, weights_index, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return warped[:, :, ::-1] if reversed_channels else warped


def resize_to_tensor(image: np.ndarray, tensor_width: int, tensor_height: int) -> np.ndarray:
    """
    Stretch as ``ImageTransformationCalculator`` does for 4-channel (hair) models.

    INTER_AREA when both source sides are larger than the tensor's, INTER_LINEAR otherwise.
    """
    height, width = image.shape[:2]
    shrinking = width > tensor_width and height > tensor_height
    return cv2.resize(image, (tensor_width, tensor_height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def fill_tensor(pixels: np.ndarray, tensor: np.ndarray, scale: np.float32,
                offset: np.float32) -> None:
    """
    Write ``pixels * scale + offset`` into the float tensor without temporaries.

    A single gray channel is broadcast to every tensor channel, which equals converting
    gray to RGB before the warp (the warp treats channels independently).
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    np.multiply(pixels[:, :, :tensor.shape[-1]], scale, out=tensor, dtype=np.float32)
    if offset:
        tensor += offset

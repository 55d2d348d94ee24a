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

Without rotation (and at 180° for most sizes: the rotated matrix's rounding can break it), the
warp's sampling factors into one source row pair per tensor row and one column pair per tensor
column. OpenCV's fixed-point bilinear weights are then exact products of a row weight and a
column weight, so a numba-compiled pass along rows and one along columns give the same integers
as ``remap`` with less work, and write the tensor values directly. Other cases (90° and 270°,
platforms without numba) use ``cv2.remap``.
"""

from functools import lru_cache
import math
import numbers
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - platforms without numba take the remap path
    numba = None

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


class SeparableWarp(NamedTuple):
    """
    Source rows per tensor row and source values per tensor row value, with 1/32 weights.

    Indices are clamped into the image, which is what ``BORDER_REPLICATE`` does.
    """

    row0: np.ndarray
    row1: np.ndarray
    row_weight: np.ndarray
    column0: np.ndarray
    column1: np.ndarray
    column_weight: np.ndarray


@lru_cache(maxsize=16)
def separable_warp(image_width: int, image_height: int, image_channels: int,
                   channel_order: Tuple[int, ...], tensor_width: int, tensor_height: int,
                   rotation_degrees: int = 0) -> Optional[SeparableWarp]:
    """
    Factor the warp maps into a row part and a column part, or None when they do not factor.

    ``channel_order`` names the image channel read for each tensor channel; columns index a
    row of the image as interleaved values (pixel by pixel, channel by channel).
    """
    coordinates, weights_index = warp_maps(image_width, image_height, tensor_width,
                                           tensor_height, rotation_degrees)
    columns, rows = coordinates[0, :, 0], coordinates[:, 0, 1]
    column_weight = weights_index[0] & ((1 << _INTER_BITS) - 1)
    row_weight = weights_index[:, 0] >> _INTER_BITS
    grid = coordinates.shape[:2]
    if not (np.array_equal(coordinates[:, :, 0], np.broadcast_to(columns, grid))
            and np.array_equal(coordinates[:, :, 1], np.broadcast_to(rows[:, np.newaxis], grid))
            and np.array_equal(weights_index,
                               (row_weight[:, np.newaxis] << _INTER_BITS) | column_weight)):
        return None

    rows, columns = rows.astype(np.int64), columns.astype(np.int64)

    def clamped(positions: np.ndarray, size: int) -> np.ndarray:
        return np.clip(positions, 0, size - 1).astype(np.uintp)

    def interleaved(columns: np.ndarray) -> np.ndarray:
        return (columns[:, np.newaxis] * np.uintp(image_channels)
                + np.array(channel_order, np.uintp)).ravel()

    plan = SeparableWarp(
        clamped(rows, image_height), clamped(rows + 1, image_height),
        row_weight.astype(np.uint16),
        interleaved(clamped(columns, image_width)), interleaved(clamped(columns + 1, image_width)),
        np.repeat(column_weight, len(channel_order)).astype(np.uint16))
    for array in plan:
        array.setflags(write=False)  # shared by every caller of the cache
    return plan


def _warp_rows_then_columns(source: np.ndarray, row0: np.ndarray, row1: np.ndarray,
                            row_weight: np.ndarray, column0: np.ndarray, column1: np.ndarray,
                            column_weight: np.ndarray, values: np.ndarray,
                            out: np.ndarray) -> None:
    """
    Compute remap's fixed-point bilinear sums as a row pass and a column pass.

    The weight of neighbour (i, j) is ``wy_i * wx_j * 32`` of 32768 (wy, wx in 1/32), so
    ``(sum + 2**14) >> 15`` equals ``(sum over j of wx_j * (sum over i of wy_i * p_ij) + 512)
    >> 10``, exactly. ``values`` maps each uint8 result to the tensor's value. Indices are
    unsigned: numba then skips the negative-index handling in the inner loops.
    """
    blended = np.empty(source.shape[1], np.uint16)
    whole = np.uint16(1 << _INTER_BITS)
    for row in range(out.shape[0]):
        top, bottom = source[row0[row]], source[row1[row]]
        down = row_weight[row]
        up = whole - down
        for i in range(blended.shape[0]):
            blended[i] = up * np.uint16(top[i]) + down * np.uint16(bottom[i])
        line = out[row]
        for i in range(line.shape[0]):
            right = np.uint32(column_weight[i])
            left = np.uint32(whole) - right
            total = left * blended[column0[i]] + right * blended[column1[i]] + np.uint32(512)
            line[i] = values[total >> np.uint32(10)]


if numba is not None:
    _warp_rows_then_columns = numba.njit(nogil=True, cache=True)(_warp_rows_then_columns)


@lru_cache(maxsize=8)
def value_table(scale: np.float32, offset: np.float32, dtype: np.dtype) -> np.ndarray:
    """Return the tensor value of every uint8 pixel value, by ``fill_tensor``'s arithmetic."""
    table = np.empty((256, 1, 1), dtype)
    fill_tensor(np.arange(256, dtype=np.uint8)[:, np.newaxis], table, scale, offset)
    table = table.ravel()
    table.setflags(write=False)
    return table


def image_to_tensor(image: np.ndarray, tensor: np.ndarray, scale: np.float32,
                    offset: np.float32, rotation_degrees: int = 0) -> None:
    """
    Warp a uint8 image (gray, RGB or RGBA) onto the tensor and write the model's values.

    The compiled separable pass where it applies, else ``warp_to_tensor`` and
    ``fill_tensor``; both give the same tensor.
    """
    height, width = image.shape[:2]
    tensor_height, tensor_width, tensor_channels = tensor.shape
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.ndim == 2:
        source, order = image, (0,) * tensor_channels
    elif image.strides[2] < 0:  # a BGR buffer viewed as RGB: read it in place
        source = image[:, :, ::-1]
        order = tuple(channels - 1 - channel for channel in range(tensor_channels))
    else:
        source, order = image, tuple(range(tensor_channels))
    every_channel_read = image.ndim == 2 or tensor_channels <= channels
    plan = (separable_warp(width, height, channels, order, tensor_width, tensor_height,
                           rotation_degrees)
            if numba is not None and tensor.flags.c_contiguous and every_channel_read else None)
    if plan is None:
        pixels = warp_to_tensor(image, tensor_width, tensor_height, rotation_degrees)
        fill_tensor(pixels, tensor, scale, offset)
        return
    _warp_rows_then_columns(np.ascontiguousarray(source).reshape(height, width * channels),
                            *plan, value_table(scale, offset, tensor.dtype),
                            tensor.reshape(tensor_height, tensor_width * tensor_channels))


def compile_image_to_tensor(dtype: np.dtype, channels: int = 3) -> None:
    """Compile (or load from numba's cache) a tensor's compiled fill now, not on a frame."""
    tensor = np.zeros((2, 2, channels), dtype)
    if channels == 4:
        pixels, order = four_channel_pixels(np.zeros((2, 2, 3), np.uint8), 2, 2, True)
        fill_four_channel_tensor(pixels, order, tensor, np.float32(1.0), np.float32(0.0))
    else:
        image_to_tensor(np.zeros((2, 2, 3), np.uint8), tensor, np.float32(1.0),
                        np.float32(0.0))


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


def four_channel_pixels(image: np.ndarray, tensor_width: int, tensor_height: int,
                        zero_alpha: bool) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """
    Resize an image for a 4-channel model; return the pixels and each tensor channel's source.

    MediaPipe makes the image RGBA (gray replicated, alpha 0 where there was none or where
    ``zero_alpha``), then resizes it (``resize_to_tensor``). The resize treats channels
    independently and maps a channel of zeros to zeros, so only the channels that carry data
    are resized, and a reversed (BGR) view from its own buffer: the source index -1 stands for
    a zero channel. No RGBA copy of the frame is made.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.strides[2] < 0:
        source = image[:, :, ::-1]
        order = tuple(image.shape[2] - 1 - channel for channel in range(image.shape[2]))
    else:
        source = image
        order = (0, 0, 0) if image.ndim == 2 else tuple(range(image.shape[2]))
    if len(order) == 3 or zero_alpha:
        order = order[:3] + (-1,)
    pixels = resize_to_tensor(np.ascontiguousarray(source), tensor_width, tensor_height)
    return pixels.reshape(pixels.shape[:2] + (-1,)), order


def _fill_four_channels(pixels: np.ndarray, channel: np.ndarray, tables: np.ndarray,
                        out: np.ndarray) -> None:
    """Write ``tables[k][pixels[..., channel[k]]]`` into channel k of out, k = 0..3."""
    c0, c1, c2, c3 = channel[0], channel[1], channel[2], channel[3]
    t0, t1, t2, t3 = tables[0], tables[1], tables[2], tables[3]
    for row in range(out.shape[0]):
        source, line = pixels[row], out[row]
        for column in range(out.shape[1]):
            line[column, 0] = t0[source[column, c0]]
            line[column, 1] = t1[source[column, c1]]
            line[column, 2] = t2[source[column, c2]]
            line[column, 3] = t3[source[column, c3]]


if numba is not None:
    _fill_four_channels = numba.njit(nogil=True, cache=True)(_fill_four_channels)


def fill_four_channel_tensor(pixels: np.ndarray, order: Tuple[int, ...], tensor: np.ndarray,
                             scale: np.float32, offset: np.float32) -> None:
    """Fill a 4-channel tensor from ``four_channel_pixels``' result, as ``fill_tensor`` would."""
    values = value_table(scale, offset, tensor.dtype)
    # A zero channel reads any pixel through a table that gives the value of 0 everywhere.
    tables = np.stack([values if source >= 0 else np.full_like(values, values[0])
                       for source in order])
    channel = np.maximum(np.array(order, np.intp), 0)
    if numba is not None:
        _fill_four_channels(pixels, channel, tables, tensor)
        return
    for k in range(4):
        tensor[:, :, k] = tables[k][pixels[:, :, channel[k]]]


def fill_tensor(pixels: np.ndarray, tensor: np.ndarray, scale: np.float32,
                offset: np.float32) -> None:
    """
    Write ``pixels * scale + offset`` into a float tensor without temporaries.

    A uint8 (quantized) tensor takes the pixels themselves. A single gray channel is
    broadcast to every tensor channel, which equals converting gray to RGB before the warp
    (the warp treats channels independently).
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if tensor.dtype == np.uint8:
        tensor[...] = pixels[:, :, :tensor.shape[-1]]
        return
    np.multiply(pixels[:, :, :tensor.shape[-1]], scale, out=tensor, dtype=np.float32)
    if offset:
        tensor += offset

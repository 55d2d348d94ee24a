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
Output tensor to masks, exactly as MediaPipe's TensorsToSegmentationCalculator on CPU.

Confidence masks: activation at tensor resolution, then ``cv2.resize`` INTER_LINEAR
(half-pixel centres) per class. Category mask: every output pixel interpolates the raw tensor
with align-corners weights, then takes the arg-max (or the 0.5 cut of a single channel).
The two grids differ on purpose: that is what MediaPipe computes.

The category mask is MediaPipe's per-pixel loop compiled with numba when it is installed
(package.xml declares it), and an equivalent vectorised NumPy computation otherwise.
"""

from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .tflite_metadata import Activation

try:
    import numba
except ImportError:  # pragma: no cover - platforms without numba take the NumPy path
    numba = None


def sigmoid(values: np.ndarray) -> np.ndarray:
    """
    Logistic function in float32, in place.

    exp() overflows to inf for logits below about -88, and 1 / (1 + inf) is 0, the right
    limit (MediaPipe's float arithmetic gives the same): the overflow is expected, not warned.
    """
    with np.errstate(over='ignore'):
        np.negative(values, out=values)
        np.exp(values, out=values)
    values += np.float32(1.0)
    return np.reciprocal(values, out=values)


def softmax_planes(planes: np.ndarray, max_subtracted: bool = False) -> np.ndarray:
    """
    Stable softmax across class planes (classes, h, w) in float32, in place.

    Per pixel the same operations in the same order as over the last axis of (h, w, classes):
    subtract the maximum (unless done already), exponentiate, sum the classes in order,
    divide. Across planes every step is a contiguous element-wise pass; along a short last
    axis NumPy is ten times slower.
    """
    if not max_subtracted:
        planes -= np.maximum.reduce(planes, axis=0)
    np.exp(planes, out=planes)
    planes /= np.add.reduce(planes, axis=0)
    return planes


def _planes_from_cells(tensor: np.ndarray, subtract_max: bool, planes: np.ndarray) -> None:
    """
    Write an (h, w, classes) tensor as class planes, less each cell's maximum if asked.

    One row at a time: the row's cells stay in cache while each plane's row is written in
    order. A NaN in a cell may be missed by the maximum, but then the softmax's sum, and so
    every class of that pixel, is NaN either way. Two classes (hair_segmenter) get a loop
    without the class loop, which the compiler vectorises: about ten times faster.
    """
    height, width, classes = tensor.shape
    maximum = np.zeros(width, np.float32)
    for row in range(height):
        cells = tensor[row]
        if classes == 2:
            first, second = planes[0, row], planes[1, row]
            for i in range(width):
                best = max(cells[i, 0], cells[i, 1]) if subtract_max else np.float32(0.0)
                first[i] = cells[i, 0] - best
                second[i] = cells[i, 1] - best
            continue
        if subtract_max:
            for i in range(width):
                best = cells[i, 0]
                for k in range(1, classes):
                    best = max(best, cells[i, k])
                maximum[i] = best
        for k in range(classes):
            line = planes[k, row]
            for i in range(width):
                line[i] = cells[i, k] - maximum[i]


def confidence_planes(tensor: np.ndarray, activation: Activation,
                      out: Optional[np.ndarray] = None) -> np.ndarray:
    """Apply the activation at tensor resolution; return one contiguous plane per class."""
    planes = np.empty((tensor.shape[2],) + tensor.shape[:2], np.float32) if out is None else out
    softmax = activation == Activation.SOFTMAX
    if COMPILED and tensor.shape[2] > 1:
        _planes_from_cells(tensor, softmax, planes)
    else:
        np.copyto(planes, np.moveaxis(tensor, -1, 0))
        if softmax:
            planes -= np.maximum.reduce(planes, axis=0)
    if activation == Activation.SIGMOID:
        sigmoid(planes)
    elif softmax:
        softmax_planes(planes, max_subtracted=True)
    return planes


def confidence_masks(tensor: np.ndarray, activation: Activation, width: int, height: int,
                     workspace: Optional['Workspace'] = None,
                     classes: Optional[Sequence[int]] = None
                     ) -> Tuple[List[Optional[np.ndarray]], bool]:
    """
    One float32 mask per class at the output size; the activation at tensor resolution.

    With a workspace, the planes at tensor resolution are its buffer (no fresh memory per
    frame); the masks returned are always new arrays. ``classes`` limits the masks made at
    the output size (the costly part with many classes) to those indices; the others are None.
    Also tells whether the planes of those masks are all finite, which makes the masks finite
    (a bilinear resize of finite values is): checked at tensor resolution, in cache, that costs
    a tenth of checking the masks (deeplab_v3's 21 masks at 640x480: 0.1 against 1.4 ms).
    """
    resizing = tensor.shape[:2] != (height, width)
    shape = (tensor.shape[2],) + tensor.shape[:2]
    planes = confidence_planes(tensor, activation, workspace.get('planes', shape)
                               if workspace is not None and resizing else None)
    wanted = range(len(planes)) if classes is None else set(classes)
    finite = all(np.isfinite(planes[index]).all() for index in wanted)
    return [(cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR) if resizing
             else plane) if index in wanted else None
            for index, plane in enumerate(planes)], finite


@lru_cache(maxsize=32)
def _align_corners_axis(size_in: int,
                        size_out: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weights along one axis, in MediaPipe's float32 arithmetic."""
    scale = (np.float32(size_in - 1) / np.float32(size_out - 1) if size_out > 1
             else np.float32(0.0))
    position = np.arange(size_out, dtype=np.float32) * scale
    low = np.maximum(np.floor(position), np.float32(0.0))
    high = np.minimum(np.ceil(position), np.float32(size_in - 1))
    weight = np.clip(position - low, np.float32(0.0), np.float32(1.0))
    return low.astype(np.intp), high.astype(np.intp), weight


class Workspace:
    """
    Scratch buffers reused from frame to frame.

    Fresh full-size arrays are not just copies: every new one page-faults its memory in, which
    costs more than the arithmetic done on it.
    """

    def __init__(self):
        self._buffers: Dict[str, np.ndarray] = {}

    def get(self, name: str, shape: Tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """Return the buffer called ``name``, reallocated only when its shape changes."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype)
        return buffer


def _lerp_rows(source: np.ndarray, low: np.ndarray, high: np.ndarray, weights: np.ndarray,
               result: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Write ``source[low] + (source[high] - source[low]) * weights`` (per row) into result."""
    np.take(source, high, axis=0, out=result)
    np.take(source, low, axis=0, out=scratch)
    result -= scratch
    result *= weights.reshape(weights.shape + (1,) * (result.ndim - 1))
    result += scratch
    return result


def interpolate_align_corners_transposed(tensor: np.ndarray, width: int, height: int,
                                         workspace: Workspace) -> np.ndarray:
    """
    Interpolate an (h, w[, c]) tensor bilinearly with aligned corners, as (width, height[, c]).

    The same float32 operations per pixel as MediaPipe's ``BilinearInterpolate`` (first along
    y, then along x), so results are bit-identical. Working transposed turns both passes into
    whole-row gathers, several times faster than gathering columns. The result is a workspace
    buffer, valid until the next call.
    """
    y0, y1, ty = _align_corners_axis(tensor.shape[0], height)
    x0, x1, tx = _align_corners_axis(tensor.shape[1], width)
    channels = tensor.shape[2:]
    rows = workspace.get('rows', (height,) + tensor.shape[1:])
    _lerp_rows(tensor, y0, y1, ty, rows, workspace.get('top', rows.shape))
    columns = workspace.get('columns', (tensor.shape[1], height) + channels)
    if channels:
        columns[...] = np.swapaxes(rows, 0, 1)
    else:
        cv2.transpose(rows, dst=columns)
    result = workspace.get('result', (width, height) + channels)
    return _lerp_rows(columns, x0, x1, tx, result, workspace.get('left', result.shape))


# MediaPipe's ``ProcessForCategoryMaskCpu`` loop, per output pixel: lerp along y, then along x,
# in float32 (``BilinearInterpolate``), an optional sigmoid, then the cut ``> 0.5`` (one
# channel: class 1) or the first arg-max. The y lerp depends only on the row, so it is done once
# per row into ``lerped``. One channel gets its own loop: several times faster than the general
# one with a channel loop of length 1.

# Where both ends of consecutive tensor cells lie this far on one side of the cut (one channel:
# 0.5, or 0 before a sigmoid), or where one class leads every other by this much at both ends
# (several channels), so does every value interpolated between them: the float32 rounding of
# the lerp is below 1e-4 for values within CLEAR_RANGE (of the cut; logits too).
CLEAR_MARGIN, CLEAR_RANGE = 1.0 / 1024, 64.0
_ALL_ABOVE, _ALL_BELOW = np.uint64(0x0101010101010101), np.uint64(0xFFFFFFFFFFFFFFFF)


def _foreground_per_pixel(tensor: np.ndarray, y0: np.ndarray, y1: np.ndarray, ty: np.ndarray,
                          x0: np.ndarray, x1: np.ndarray, tx: np.ndarray,
                          first_column: np.ndarray, apply_sigmoid: bool,
                          out: np.ndarray) -> None:
    """
    Compute the one-channel loop, filling runs of clearly decided cells at once.

    ``first_column[j]`` is the first output column whose left neighbour is tensor column j.
    Only columns of cells that straddle the cut, or whose values are not clearly on one side,
    are computed pixel by pixel; the rest of the row is the same answer either way.
    """
    one, half = np.float32(1.0), np.float32(0.5)
    cut = np.float32(0.0) if apply_sigmoid else half
    above_low, above_high = cut + np.float32(CLEAR_MARGIN), cut + np.float32(CLEAR_RANGE)
    below_low, below_high = cut - np.float32(CLEAR_RANGE), cut - np.float32(CLEAR_MARGIN)
    width = tensor.shape[1]
    lerped = np.empty(width, np.float32)
    # 1: clearly above the cut, -1: clearly below, 0: unsure. Runs are scanned eight cells
    # at a time where they are aligned: a word of eight 1s (or -1s) is one comparison.
    side = np.zeros(-(-width // 8) * 8, np.int8)
    words = side.view(np.uint64)
    for row in range(out.shape[0]):
        top, bottom, down = tensor[y0[row]], tensor[y1[row]], ty[row]
        for i in range(width):
            value = top[i] + (bottom[i] - top[i]) * down
            lerped[i] = value
            side[i] = (1 if above_low <= value <= above_high else
                       -1 if below_low <= value <= below_high else 0)
        line = out[row]
        cell = 0
        while cell < width:
            last = cell
            if side[cell] != 0:
                whole_word = _ALL_ABOVE if side[cell] > 0 else _ALL_BELOW
                last += 1
                while last < width and side[last] == side[cell]:
                    aligned = last & 7 == 0 and last + 8 <= width
                    last += 8 if aligned and words[last >> 3] == whole_word else 1
                last -= 1
            if last > cell:  # columns between tensor columns cell and last: all one side
                line[first_column[cell]:first_column[last]] = side[cell] > 0
                cell = last
                continue
            for column in range(first_column[cell], first_column[cell + 1]):
                left, right = lerped[x0[column]], lerped[x1[column]]
                score = left + (right - left) * tx[column]
                if apply_sigmoid:
                    score = one / (one + np.exp(-score))
                line[column] = score > half
            cell += 1


def _clear_winners(tensor: np.ndarray, apply_sigmoid: bool) -> np.ndarray:
    """
    Per tensor cell, the class ahead of every other by CLEAR_MARGIN, or -1.

    One pass over each cell's scores keeps the best (the first of equals), the highest other
    score (at least -CLEAR_RANGE) and whether all lie within CLEAR_RANGE (a NaN does not).
    After a sigmoid, saturated scores tie and the lowest index wins instead: no cell is clear
    then. Two classes get the same test without the class loop, vectorised by the compiler.
    """
    height, width, classes = tensor.shape
    winners = np.full((height, width), -1, np.int32)
    if apply_sigmoid:
        return winners
    margin, limit = np.float32(CLEAR_MARGIN), np.float32(CLEAR_RANGE)
    for row in range(height):
        cells, line = tensor[row], winners[row]
        if classes == 2:
            for i in range(width):
                first, second = cells[i, 0], cells[i, 1]
                if -limit <= first <= limit and -limit <= second <= limit:
                    if first - second >= margin:
                        line[i] = 0
                    elif second - first >= margin:
                        line[i] = 1
            continue
        for i in range(width):
            best, best_score = 0, cells[i, 0]
            runner_up = -limit
            in_range = -limit <= best_score <= limit
            for k in range(1, classes):
                score = cells[i, k]
                in_range &= -limit <= score <= limit
                runner_up = max(runner_up, min(score, best_score))
                if score > best_score:
                    best, best_score = k, score
            if in_range and best_score - runner_up >= margin:
                line[i] = best
    return winners


def _argmax_per_pixel(tensor: np.ndarray, y0: np.ndarray, y1: np.ndarray, ty: np.ndarray,
                      x0: np.ndarray, x1: np.ndarray, tx: np.ndarray,
                      first_column: np.ndarray, apply_sigmoid: bool,
                      out: np.ndarray) -> None:
    """
    Compute the arg-max loop, filling runs of cells with one clear winner at once.

    A class ahead of every other by CLEAR_MARGIN at the four corners of a cell stays ahead
    inside it (the differences are bilinear). Rows are lerped only at the tensor columns that
    pixels computed one by one need. Runs are scanned eight cells at a time where they are
    aligned, as in the one-channel loop.
    """
    one = np.float32(1.0)
    width, classes = tensor.shape[1], tensor.shape[2]
    clear = _clear_winners(tensor, apply_sigmoid)
    lerped = np.empty((width, classes), np.float32)
    lerped_row = np.full(width, -1, np.int64)  # the output row each lerped column is for
    winner = np.empty(width, np.int32)
    # 0 where the next cell has the same clear winner; the padding and the last cell end runs.
    breaks = np.ones(-(-width // 8) * 8, np.uint8)
    words = breaks.view(np.uint64)
    for row in range(out.shape[0]):
        top, bottom, down = tensor[y0[row]], tensor[y1[row]], ty[row]
        upper, lower = clear[y0[row]], clear[y1[row]]
        for i in range(width):
            winner[i] = upper[i] if upper[i] == lower[i] else -1
        for i in range(width - 1):
            breaks[i] = winner[i] < 0 or winner[i] != winner[i + 1]
        line = out[row]
        cell = 0
        while cell < width:
            last = cell
            if winner[cell] >= 0:
                while breaks[last] == 0:
                    last += 8 if last & 7 == 0 and words[last >> 3] == 0 else 1
            if last > cell:  # columns between tensor columns cell and last: one winner
                line[first_column[cell]:first_column[last]] = winner[cell]
                cell = last
                continue
            for column in range(first_column[cell], first_column[cell + 1]):
                for i in (x0[column], x1[column]):
                    if lerped_row[i] != row:
                        for k in range(classes):
                            lerped[i, k] = top[i, k] + (bottom[i, k] - top[i, k]) * down
                        lerped_row[i] = row
                left, right, across = lerped[x0[column]], lerped[x1[column]], tx[column]
                best, best_score = 0, np.float32(0.0)
                for k in range(classes):
                    score = left[k] + (right[k] - left[k]) * across
                    if apply_sigmoid:
                        score = one / (one + np.exp(-score))
                    if k == 0 or score > best_score:
                        best, best_score = k, score
                line[column] = best
            cell += 1


if numba is not None:
    _planes_from_cells = numba.njit(nogil=True, cache=True)(_planes_from_cells)
    _foreground_per_pixel = numba.njit(nogil=True, cache=True)(_foreground_per_pixel)
    _clear_winners = numba.njit(nogil=True, cache=True)(_clear_winners)
    _argmax_per_pixel = numba.njit(nogil=True, cache=True)(_argmax_per_pixel)
COMPILED = numba is not None


def compile_category_mask() -> None:
    """Compile (or load from numba's cache) the compiled loops now, not on the first frame."""
    if COMPILED:
        for channels in (1, 2):
            category_mask_compiled(np.zeros((2, 2, channels), np.float32), Activation.NONE, 2, 2)
        confidence_planes(np.zeros((2, 2, 2), np.float32), Activation.SOFTMAX)


def category_mask_compiled(tensor: np.ndarray, activation: Activation, width: int,
                           height: int) -> np.ndarray:
    """Class index per output pixel (uint8), by the compiled per-pixel loops."""
    out = np.empty((height, width), np.uint8)
    axes = (*_align_corners_axis(tensor.shape[0], height),
            *_align_corners_axis(tensor.shape[1], width))
    sigmoid_first = activation == Activation.SIGMOID
    first_column = np.searchsorted(axes[3], np.arange(tensor.shape[1] + 1))
    if tensor.shape[2] == 1:
        _foreground_per_pixel(np.ascontiguousarray(tensor[:, :, 0]), *axes, first_column,
                              sigmoid_first, out.view(np.bool_))
    else:
        _argmax_per_pixel(np.ascontiguousarray(tensor), *axes, first_column, sigmoid_first,
                          out)
    return out


def category_mask_vectorized(tensor: np.ndarray, activation: Activation, width: int,
                             height: int, workspace: Optional[Workspace] = None) -> np.ndarray:
    """Class index per output pixel (uint8), by whole-array NumPy operations."""
    workspace = workspace or Workspace()
    if tensor.shape[-1] == 1:
        tensor = tensor[:, :, 0]  # 2-D arrays index several times faster than (h, w, 1).
    scores = interpolate_align_corners_transposed(tensor, width, height, workspace)
    if activation == Activation.SIGMOID:
        sigmoid(scores)
    if scores.ndim == 2:
        classes = np.greater(scores, np.float32(0.5),
                             out=workspace.get('above', scores.shape, np.bool_)).view(np.uint8)
    else:
        indices = np.argmax(scores, axis=-1,
                            out=workspace.get('argmax', scores.shape[:2], np.intp))
        classes = indices.astype(np.uint8)
    return cv2.transpose(classes)


def category_mask(tensor: np.ndarray, activation: Activation, width: int, height: int,
                  workspace: Optional[Workspace] = None) -> np.ndarray:
    """
    Class index per output pixel (uint8), as MediaPipe computes it.

    A single channel is a foreground probability: 1 where it exceeds 0.5, else 0 (MediaPipe
    writes 0 for foreground and 255 for background; this engine exposes two classes instead).
    """
    if COMPILED:
        return category_mask_compiled(tensor, activation, width, height)
    return category_mask_vectorized(tensor, activation, width, height, workspace)

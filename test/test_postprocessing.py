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
The compiled category-mask loop against the NumPy one, on tensors built to be hard for it.

The compiled loops decide whole runs of output pixels from the tensor values around them;
these tensors put values just either side of the cut (one channel) or of another class's score
(several), at the margins the loops trust, outside their range, and NaN (one channel), at
sizes that make the output columns fall unevenly on the tensor cells.
MediaPipe parity on real frames is in test_engine_parity.py.
"""

from image_segmenter_ros.engine import postprocessing
from image_segmenter_ros.engine.tflite_metadata import Activation
import numpy as np
import pytest


def hard_tensor(rng: np.random.Generator, height: int, width: int, cut: float,
                closest: float) -> np.ndarray:
    """Smooth blobs around the cut, with values at the edges of what the loop trusts."""
    smooth = np.cumsum(np.cumsum(rng.normal(size=(height, width)), 0), 1)
    tensor = (cut + smooth / (np.abs(smooth).max() + 1e-6)).astype(np.float32)
    edges = np.float32([cut, cut + closest, cut - closest, cut + postprocessing.CLEAR_MARGIN,
                        cut - postprocessing.CLEAR_MARGIN, cut + postprocessing.CLEAR_RANGE,
                        cut - postprocessing.CLEAR_RANGE, cut + 1e3, cut - 1e3, np.nan])
    spots = rng.random((height, width)) < 0.15
    tensor[spots] = rng.choice(edges, size=int(spots.sum()))
    return tensor[:, :, np.newaxis]


@pytest.mark.skipif(not postprocessing.COMPILED, reason='numba is not installed')
@pytest.mark.parametrize('activation', [Activation.NONE, Activation.SIGMOID])
@pytest.mark.parametrize('seed', range(12))
def test_one_channel_compiled_loop_equals_numpy(activation, seed):
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(2, 40, size=2))
    out_width, out_height = (int(v) for v in rng.integers(1, 300, size=2))
    # Scores within 1e-7 of 0 go through exp(), whose last bit differs between NumPy's and the C
    # library's (which the compiled loop uses, as MediaPipe does): not this test's subject.
    sigmoid = activation == Activation.SIGMOID
    tensor = hard_tensor(rng, height, width, 0.0 if sigmoid else 0.5, 1e-5 if sigmoid else 1e-7)
    compiled = postprocessing.category_mask_compiled(tensor, activation, out_width, out_height)
    numpy = postprocessing.category_mask_vectorized(tensor, activation, out_width, out_height)
    np.testing.assert_array_equal(compiled, numpy)


def hard_multiclass_tensor(rng: np.random.Generator, height: int, width: int,
                           classes: int) -> np.ndarray:
    """Smooth class scores, with cells where two classes tie or lead each other barely."""
    smooth = np.cumsum(np.cumsum(rng.normal(size=(height, width, classes)), 0), 1)
    tensor = (4 * smooth / (np.abs(smooth).max() + 1e-6)).astype(np.float32)
    margin = np.float32(postprocessing.CLEAR_MARGIN)
    gaps = np.float32([0.0, 1e-7, -1e-7, margin, -margin, margin * 1.001, margin * 0.999])
    for row, column in zip(*np.nonzero(rng.random((height, width)) < 0.2)):
        first, second = rng.choice(classes, size=2, replace=False)
        tensor[row, column, second] = tensor[row, column, first] + rng.choice(gaps)
    far = rng.random((height, width)) < 0.05
    tensor[far, rng.integers(classes)] = rng.choice(
        np.float32([postprocessing.CLEAR_RANGE, -postprocessing.CLEAR_RANGE, 1e3, -1e3]),
        size=int(far.sum()))
    # A block of huge scores a few float steps apart: beyond the range the runs trust.
    top, left = rng.integers(height), rng.integers(width)
    block = tensor[top:top + height // 2, left:left + width // 2]
    block[...] = np.float32(3e5) + np.float32(0.03125) * rng.integers(0, 4, size=block.shape)
    return tensor


@pytest.mark.skipif(not postprocessing.COMPILED, reason='numba is not installed')
@pytest.mark.parametrize('activation', [Activation.NONE, Activation.SOFTMAX,
                                        Activation.SIGMOID])
@pytest.mark.parametrize('classes', [2, 3, 7])  # two classes have their own compiled loops
@pytest.mark.parametrize('seed', range(4))
def test_multiclass_compiled_loop_equals_numpy(activation, classes, seed):
    rng = np.random.default_rng(100 + seed)
    height, width = (int(v) for v in rng.integers(2, 40, size=2))
    out_width, out_height = (int(v) for v in rng.integers(1, 300, size=2))
    tensor = hard_multiclass_tensor(rng, height, width, classes)
    if activation == Activation.SIGMOID:  # keep clear of exp()'s last-bit differences (above)
        tensor[np.abs(tensor) < 1e-3] = 0.5
    compiled = postprocessing.category_mask_compiled(tensor, activation, out_width, out_height)
    numpy = postprocessing.category_mask_vectorized(tensor, activation, out_width, out_height)
    np.testing.assert_array_equal(compiled, numpy)


# Cells whose float32 lerps flip the order of classes that lead at every corner: by less than
# CLEAR_MARGIN (first), or by one float step among huge scores beyond CLEAR_RANGE (second).
ROUNDING_TRAPS = [
    ([[[-0.5714167952537537, -0.5714166760444641], [3.027841567993164, 3.0278420448303223]],
      [[2.7981467247009277, 2.798147201538086], [-0.1625286191701889, -0.16252851486206055]]],
     26, 35),
    ([[[999999.875, 999999.9375], [1000000.0625, 1000000.125]],
      [[1000000.125, 999999.875], [1000000.125, 1000000.0]]], 29, 7),
]
# Two classes have their own loops: a trap where the first class leads (the one above has the
# second), and the first trap with a third class far behind for the loop of several classes.
ROUNDING_TRAPS += [
    ([[[-0.16409796476364136, -0.16409797966480255], [3.668184280395508, 3.6681840419769287]],
      [[-1.4617769718170166, -1.4617773294448853], [-0.7833236455917358, -0.7833237648010254]]],
     15, 25),
    ([[cell + [-10.0] for cell in row] for row in ROUNDING_TRAPS[0][0]],) + ROUNDING_TRAPS[0][1:],
]


@pytest.mark.skipif(not postprocessing.COMPILED, reason='numba is not installed')
@pytest.mark.parametrize('scores, out_width, out_height', ROUNDING_TRAPS)
def test_multiclass_runs_leave_rounding_traps_to_the_per_pixel_loop(scores, out_width,
                                                                    out_height):
    tensor = np.array(scores, np.float32)
    compiled = postprocessing.category_mask_compiled(tensor, Activation.NONE, out_width,
                                                     out_height)
    numpy = postprocessing.category_mask_vectorized(tensor, Activation.NONE, out_width,
                                                    out_height)
    np.testing.assert_array_equal(compiled, numpy)


@pytest.mark.skipif(not postprocessing.COMPILED, reason='numba is not installed')
@pytest.mark.parametrize('activation', list(Activation))
@pytest.mark.parametrize('classes', [1, 2, 21])
def test_compiled_confidence_planes_equal_numpy(activation, classes, monkeypatch):
    """Class planes by the compiled pass, bit for bit those of moveaxis and NumPy's activation."""
    rng = np.random.default_rng(classes)
    tensor = (rng.normal(size=(37, 53, classes)) * 20).astype(np.float32)
    spots = rng.random(tensor.shape) < 0.02
    tensor[spots] = rng.choice(np.float32([np.nan, np.inf, -np.inf, 1e30, -1e30]),
                               size=int(spots.sum()))
    with np.errstate(invalid='ignore', over='ignore'):
        compiled = postprocessing.confidence_planes(tensor, activation)
        monkeypatch.setattr(postprocessing, 'COMPILED', False)
        numpy_path = postprocessing.confidence_planes(tensor, activation)
        expected = np.moveaxis(tensor, -1, 0).copy()
        if activation == Activation.SIGMOID:
            postprocessing.sigmoid(expected)
        elif activation == Activation.SOFTMAX:
            postprocessing.softmax_planes(expected)
    np.testing.assert_array_equal(compiled, expected)
    np.testing.assert_array_equal(numpy_path, expected)


@pytest.mark.parametrize('activation', list(Activation))
@pytest.mark.parametrize('classes', [1, 2, 21])
@pytest.mark.parametrize('size', [(64, 48), (53, 37)], ids=['larger', 'same'])
def test_confidence_masks_tell_whether_they_are_finite(activation, classes, size):
    """The flag, judged on the planes, is what checking every returned mask would say."""
    rng = np.random.default_rng(classes)
    wanted = None if classes < 3 else [0, 4, 20]
    for spot in (None, np.nan, np.inf, -np.inf, 1e38):
        tensor = (rng.normal(size=(37, 53, classes)) * 20).astype(np.float32)
        if spot is not None:
            tensor[rng.integers(37), rng.integers(53), rng.integers(classes)] = spot
        with np.errstate(invalid='ignore', over='ignore'):
            masks, finite = postprocessing.confidence_masks(
                tensor, activation, *size, postprocessing.Workspace(), wanted)
        made = [mask for mask in masks if mask is not None]
        assert len(made) == (classes if wanted is None else len(wanted))
        assert finite == all(np.isfinite(mask).all() for mask in made)

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
The engine against MediaPipe itself: same model file, same image, same masks.

Confidence masks must agree to float rounding and category masks on every pixel, for real
video frames at sizes smaller and larger than the model input, odd and portrait sizes, and
RGB, RGBA and gray inputs (MediaPipe gets gray replicated to RGB).
"""

import cv2
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from image_segmenter_ros.engine import postprocessing
import mediapipe as mp
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.vision import image_segmenter as mp_segmenter
import numpy as np
import pytest

SIZES = [(720, 528), (1280, 720), (100, 60), (301, 199), (199, 301), (257, 511)]
FORMATS = ['rgb', 'rgba', 'gray']
MULTICLASS_MODELS = ['multiclass_softmax', 'multiclass_sigmoid', 'multiclass_none',
                     'no_activation_metadata', 'no_labels', 'quantized_softmax']
CONFIDENCE_TOLERANCE = 1e-4


def as_format(rgb: np.ndarray, image_format: str) -> np.ndarray:
    if image_format == 'rgba':
        alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
        return np.concatenate([rgb, alpha], axis=2)
    if image_format == 'gray':
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return rgb


def mediapipe_input(image: np.ndarray) -> 'mp.Image':
    if image.ndim == 2:
        image = np.dstack([image, image, image])
    image_format = mp.ImageFormat.SRGBA if image.shape[2] == 4 else mp.ImageFormat.SRGB
    return mp.Image(image_format=image_format, data=np.ascontiguousarray(image))


class Oracle:
    """A MediaPipe segmenter and ours on the same model file, both masks enabled."""

    def __init__(self, model_path):
        self.reference = mp_segmenter.ImageSegmenter.create_from_options(
            mp_segmenter.ImageSegmenterOptions(
                base_options=BaseOptions(model_asset_path=str(model_path)),
                output_confidence_masks=True, output_category_mask=True))
        self.engine = ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(model_path), output_confidence_masks=True,
            output_category_mask=True))

    def compare(self, image: np.ndarray) -> int:
        """Assert parity on one image; return how many classes its category mask has."""
        height, width = image.shape[:2]
        expected = self.reference.segment(mediapipe_input(image))
        expected_confidence = [m.numpy_view().reshape(height, width)
                               for m in expected.confidence_masks]
        expected_category = expected.category_mask.numpy_view().reshape(height, width)
        actual = self.engine.segment(image)
        if len(expected_confidence) == 1:
            # Documented difference: one foreground channel becomes [background, foreground]
            # and MediaPipe's category values 0 (foreground) / 255 become 1 / 0.
            assert len(actual.confidence_masks) == 2
            np.testing.assert_array_equal(actual.confidence_masks[0],
                                          np.float32(1) - actual.confidence_masks[1])
            actual_confidence = actual.confidence_masks[1:]
            expected_category = np.where(expected_category == 0, 1, 0).astype(np.uint8)
        else:
            actual_confidence = actual.confidence_masks
        assert len(actual_confidence) == len(expected_confidence)
        for ours, theirs in zip(actual_confidence, expected_confidence):
            assert ours.shape == (height, width) and ours.dtype == np.float32
            assert np.abs(ours - theirs).max() <= CONFIDENCE_TOLERANCE
        assert actual.category_mask.shape == (height, width)
        assert actual.category_mask.dtype == np.uint8
        mismatched = int((actual.category_mask != expected_category).sum())
        assert mismatched == 0, '%d category pixels differ' % mismatched
        return len(np.unique(actual.category_mask))

    def close(self) -> None:
        self.reference.close()
        self.engine.close()


@pytest.fixture(autouse=True, params=['compiled', 'vectorized'])
def category_mask_path(request, monkeypatch):
    """Check both category-mask implementations (numba's loop and the NumPy fallback)."""
    if request.param == 'vectorized':
        monkeypatch.setattr(postprocessing, 'COMPILED', False)
    else:
        assert postprocessing.COMPILED, 'numba is missing'
    return request.param


@pytest.mark.parametrize('size', SIZES, ids=lambda s: '%dx%d' % s)
@pytest.mark.parametrize('image_format', FORMATS)
@pytest.mark.parametrize('model', ['selfie_segmentation', 'selfie_segmentation_landscape'])
def test_legacy_selfie_models_match_mediapipe(model, image_format, size, legacy_models,
                                              megamind_frames, oracles):
    oracle = oracles(legacy_models[model])
    classes = [oracle.compare(as_format(cv2.resize(frame, size), image_format))
               for frame in megamind_frames]
    assert max(classes) >= 2, 'every pixel of every frame has one class: nothing was compared'


@pytest.mark.parametrize('size', SIZES, ids=lambda s: '%dx%d' % s)
@pytest.mark.parametrize('image_format', FORMATS)
@pytest.mark.parametrize('model', MULTICLASS_MODELS + ['binary_sigmoid'])
def test_generated_models_match_mediapipe(model, image_format, size, test_models,
                                          megamind_frames, street_frames, oracles):
    oracle = oracles(test_models[model])
    classes = [oracle.compare(as_format(cv2.resize(frame, size), image_format))
               for frame in megamind_frames[:1] + street_frames]
    assert max(classes) >= 2, 'every pixel of every frame has one class: nothing was compared'


@pytest.mark.parametrize('size', [(720, 528), (20, 24), (301, 199)], ids=lambda s: '%dx%d' % s)
def test_four_channel_hair_path_matches_mediapipe(size, test_models, megamind_frames, oracles):
    oracle = oracles(test_models['hair_like'])
    classes = [oracle.compare(as_format(cv2.resize(frame, size), 'rgba'))
               for frame in megamind_frames]
    assert max(classes) >= 2, 'every pixel of every frame has one class: nothing was compared'


def test_multiclass_category_mask_is_not_trivial(test_models, megamind_frames):
    """Guard against a parity test that passes because every pixel has one class."""
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(test_models['multiclass_softmax']), output_category_mask=True)) as seg:
        mask = seg.segment(megamind_frames[1]).category_mask
    assert len(np.unique(mask)) >= 3

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
The engine against MediaPipe 1.2.2 on the official Tasks model files.

The same checks as for the legacy files (test_engine_parity.py): confidence masks to float
rounding, category masks on every pixel, every size and input kind, plus the rotations the
README claims and the hair model's alpha channel.
"""

import cv2
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from mediapipe.tasks.python.vision.core.image_processing_options import ImageProcessingOptions
import numpy as np
import pytest
from test_engine_parity import (as_format, CONFIDENCE_TOLERANCE, FORMATS, mediapipe_input,
                                SIZES)

TASKS_MODELS = ['selfie_segmenter', 'selfie_segmenter_landscape', 'hair_segmenter',
                'deeplab_v3']
THREE_CHANNEL_MODELS = ['selfie_segmenter', 'selfie_segmenter_landscape', 'deeplab_v3']
PERSON = 15  # deeplab_v3's class index of 'person'


@pytest.fixture(scope='module')
def oracle(tasks_model, oracles):
    """One MediaPipe segmenter and one engine per official model, created on first use."""
    return lambda name: oracles(tasks_model(name))


@pytest.mark.parametrize('size', SIZES, ids=lambda s: '%dx%d' % s)
@pytest.mark.parametrize('image_format', FORMATS)
@pytest.mark.parametrize('model', TASKS_MODELS)
def test_tasks_models_match_mediapipe(model, image_format, size, megamind_frames, oracle):
    checker = oracle(model)
    classes = [checker.compare(as_format(cv2.resize(frame, size), image_format))
               for frame in megamind_frames]
    assert max(classes) >= 2, 'every pixel of every frame has one class: nothing was compared'


def test_deeplab_finds_people_in_the_sample_frames(tasks_model, megamind_frames):
    """Guard against a deeplab parity that passes on frames where everything is background."""
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(tasks_model('deeplab_v3')), output_category_mask=True)) as seg:
        assert len(seg.labels) == 21 and seg.labels[PERSON] == 'person'
        for frame in megamind_frames:
            result = seg.segment(frame)
            assert len(result.confidence_masks) == 21
            assert (result.category_mask == PERSON).mean() > 0.05


def _rotated_reference(checker, image, rotation):
    """Return the masks of MediaPipe's rotated run, turned back to the input's orientation."""
    height, width = image.shape[:2]
    expected = checker.reference.segment(mediapipe_input(image),
                                         ImageProcessingOptions(rotation_degrees=rotation))
    turns = rotation // 90
    confidence = [np.rot90(mask.numpy_view().reshape(height, width), turns)
                  for mask in expected.confidence_masks]
    category = np.rot90(expected.category_mask.numpy_view().reshape(height, width), turns)
    return confidence, category


@pytest.mark.parametrize('rotation', [90, 180, 270])
@pytest.mark.parametrize('model', THREE_CHANNEL_MODELS)
def test_rotations_match_mediapipe(model, rotation, megamind_frames, oracle):
    """180° and 270° as MediaPipe samples them; 90° on nearly every pixel (square images)."""
    checker = oracle(model)
    images = [cv2.resize(megamind_frames[1], (400, 400))]
    if rotation == 180:  # MediaPipe stretches a quarter-turned mask: only 180° keeps the shape
        images.append(cv2.resize(megamind_frames[2], (301, 199)))
    for image in images:
        expected_confidence, expected_category = _rotated_reference(checker, image, rotation)
        actual = checker.engine.segment(image, rotation_degrees=rotation)
        confidence = actual.confidence_masks
        if len(expected_confidence) == 1:  # [background, foreground], category 0 = foreground
            confidence = confidence[1:]
            expected_category = np.where(expected_category == 0, 1, 0)
        differences = [np.abs(ours - theirs) for ours, theirs in
                       zip(confidence, expected_confidence)]
        agreement = (actual.category_mask == expected_category).mean()
        assert len(np.unique(actual.category_mask)) >= 2
        if rotation == 90:
            assert max(d.mean() for d in differences) < 1e-3 and agreement > 0.999
        else:
            assert max(d.max() for d in differences) <= CONFIDENCE_TOLERANCE
            assert agreement == 1.0


@pytest.mark.parametrize('size', [(400, 400), (301, 199)], ids=lambda s: '%dx%d' % s)
def test_hair_rotation_turns_the_frame_upright_where_mediapipe_ignores_it(size, megamind_frames,
                                                                          oracle):
    """Documented difference: our rotated run equals MediaPipe's run on the upright frame."""
    checker = oracle('hair_segmenter')
    upright = as_format(cv2.resize(megamind_frames[1], size), 'rgba')
    expected = checker.reference.segment(mediapipe_input(upright))
    hair = expected.confidence_masks[1].numpy_view().reshape(upright.shape[:2])
    category = expected.category_mask.numpy_view().reshape(upright.shape[:2])
    for rotation in (90, 180, 270):
        turns = rotation // 90
        sideways = np.ascontiguousarray(np.rot90(upright, turns))
        actual = checker.engine.segment(sideways, rotation_degrees=rotation)
        assert np.abs(actual.confidence_masks[1] - np.rot90(hair, turns)).max() \
            <= CONFIDENCE_TOLERANCE
        np.testing.assert_array_equal(actual.category_mask, np.rot90(category, turns))


def test_hair_model_alpha_channel_is_zeroed_like_mediapipe(tasks_model, megamind_frames,
                                                           oracle):
    """
    The hair model's 4th ("previous mask") input channel is zeroed, as MediaPipe does.

    RGB, and RGBA with any alpha, give MediaPipe's masks; the raw model does react to that
    channel, so a segmenter that passed alpha through would fail here.
    """
    checker = oracle('hair_segmenter')
    rgb = cv2.resize(megamind_frames[0], (360, 264))
    rng = np.random.default_rng(16)
    alphas = {'opaque': np.full(rgb.shape[:2], 255, np.uint8),
              'noise': rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8)}
    from_rgb = checker.engine.segment(rgb)
    for name, alpha in alphas.items():
        rgba = np.dstack([rgb, alpha])
        checker.compare(rgba)
        from_rgba = checker.engine.segment(rgba)
        np.testing.assert_array_equal(from_rgba.category_mask, from_rgb.category_mask,
                                      err_msg=name)
        np.testing.assert_array_equal(from_rgba.confidence_masks[1],
                                      from_rgb.confidence_masks[1], err_msg=name)
    checker.compare(rgb)

    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(tasks_model('hair_segmenter')), num_threads=2)
    interpreter.allocate_tensors()
    (tensor_in,) = interpreter.get_input_details()
    (tensor_out,) = interpreter.get_output_details()
    pixels = cv2.resize(rgb, (512, 512)).astype(np.float32) / 255
    hair = []
    for alpha in (0.0, 1.0):
        interpreter.set_tensor(tensor_in['index'], np.dstack(
            [pixels, np.full((512, 512), alpha, np.float32)])[np.newaxis])
        interpreter.invoke()
        hair.append(interpreter.get_tensor(tensor_out['index'])[0].argmax(axis=2))
    assert (hair[0] != hair[1]).mean() > 0.01, 'the raw model ignores its 4th channel'


def test_confidence_classes_computes_only_those_masks(tasks_model, legacy_models,
                                                      megamind_frames):
    """The node's per-subscriber masks: the same values, and nothing made for other classes."""
    frame = megamind_frames[1]
    for model, classes in ((tasks_model('deeplab_v3'), [PERSON, 11]),
                           (legacy_models['selfie_segmentation'], [1])):
        with ImageSegmenter.create_from_options(ImageSegmenterOptions(
                model_path=str(model), output_category_mask=True)) as segmenter:
            full = segmenter.segment(frame)
            some = segmenter.segment(frame, confidence_classes=classes,
                                     output_category_mask=False)
            for index, mask in enumerate(some.confidence_masks):
                if index in classes:
                    np.testing.assert_array_equal(mask, full.confidence_masks[index])
                else:
                    assert mask is None
            assert len(some.confidence_masks) == len(full.confidence_masks)
            assert some.category_mask is None
            count = len(full.confidence_masks)
            with pytest.raises(ValueError, match='confidence_classes must be class indices '
                               'from 0 to %d, not \\[%d\\]' % (count - 1, count)):
                segmenter.segment(frame, confidence_classes=[count])

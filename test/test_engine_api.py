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
Running modes, timestamps, callbacks, labels, rotation and errors of the engine.

Where MediaPipe defines a behaviour, the test asks MediaPipe itself and expects the same
exception type and message.
"""

import gc
import threading
import time
import weakref

import cv2
import flatbuffers
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions, RunningMode
from image_segmenter_ros.engine.model_catalog import ModelNotFoundError
import mediapipe as mp
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.vision import image_segmenter as mp_segmenter
from mediapipe.tasks.python.vision.core.image_processing_options import ImageProcessingOptions
from mediapipe.tasks.python.vision.core.vision_task_running_mode import (
    VisionTaskRunningMode as MpRunningMode)
import numpy as np
import pytest
from tflite_test_models import build_model, TestModelSpec

IMAGE = np.full((48, 64, 3), 128, np.uint8)


def ours(model, **options):
    return ImageSegmenter.create_from_options(ImageSegmenterOptions(model_path=str(model),
                                                                    **options))


def theirs(model, running_mode='IMAGE', **options):
    return mp_segmenter.ImageSegmenter.create_from_options(mp_segmenter.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(model)),
        running_mode=MpRunningMode[running_mode], **options))


def raised(action):
    try:
        action()
    except Exception as error:  # noqa: B902 - the point is to capture whatever is raised
        return type(error), str(error)
    return None


def mp_image(image):
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=image)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


CALLS = {
    'segment': (lambda s, image: s.segment(image), lambda s, image: s.segment(mp_image(image))),
    'segment_for_video': (lambda s, image: s.segment_for_video(image, 1),
                          lambda s, image: s.segment_for_video(mp_image(image), 1)),
    'segment_async': (lambda s, image: s.segment_async(image, 1),
                      lambda s, image: s.segment_async(mp_image(image), 1)),
}


@pytest.mark.parametrize('mode', ['IMAGE', 'VIDEO', 'LIVE_STREAM'])
@pytest.mark.parametrize('call', sorted(CALLS))
def test_calls_in_the_wrong_mode_fail_like_mediapipe(mode, call, legacy_models):
    model = legacy_models['selfie_segmentation']
    callback = (lambda *args: None) if mode == 'LIVE_STREAM' else None
    ours_call, theirs_call = CALLS[call]
    with ours(model, running_mode=RunningMode[mode], result_callback=callback) as mine, \
            theirs(model, mode, result_callback=callback) as reference:
        expected = raised(lambda: theirs_call(reference, IMAGE))
        actual = raised(lambda: ours_call(mine, IMAGE))
    assert actual == expected


@pytest.mark.parametrize('options', [
    {'running_mode': 'LIVE_STREAM'},
    {'running_mode': 'IMAGE', 'result_callback': print},
    {'running_mode': 'VIDEO', 'result_callback': print},
    {'output_confidence_masks': False, 'output_category_mask': False},
], ids=['live-without-callback', 'image-with-callback', 'video-with-callback', 'no-outputs'])
def test_invalid_options_fail_like_mediapipe(options, legacy_models):
    model = legacy_models['selfie_segmentation']
    mode = options.pop('running_mode', 'IMAGE')
    expected = raised(lambda: theirs(model, mode, **options).close())
    actual = raised(lambda: ours(model, running_mode=RunningMode[mode], **options).close())
    assert expected is not None and actual == expected


@pytest.mark.parametrize('mode', ['VIDEO', 'LIVE_STREAM'])
def test_timestamps_must_increase_strictly_like_mediapipe(mode, legacy_models):
    model = legacy_models['selfie_segmentation']
    callback = (lambda *args: None) if mode == 'LIVE_STREAM' else None
    method = 'segment_for_video' if mode == 'VIDEO' else 'segment_async'
    with ours(model, running_mode=RunningMode[mode], result_callback=callback) as mine, \
            theirs(model, mode, result_callback=callback) as reference:
        for timestamp in (5, 5, 3, 6):
            expected = raised(lambda: getattr(reference, method)(mp_image(IMAGE), timestamp))
            actual = raised(lambda: getattr(mine, method)(IMAGE, timestamp))
            assert actual == expected, timestamp


def test_rotation_must_be_a_multiple_of_90_like_mediapipe(legacy_models):
    model = legacy_models['selfie_segmentation']
    with ours(model) as mine, theirs(model) as reference:
        expected = raised(lambda: reference.segment(
            mp_image(IMAGE), ImageProcessingOptions(rotation_degrees=45)))
        assert raised(lambda: mine.segment(IMAGE, rotation_degrees=45)) == expected
        with pytest.raises(TypeError, match='rotation_degrees must be a number'):
            mine.segment(IMAGE, rotation_degrees='90')


def test_missing_and_non_tflite_model_files_fail_like_mediapipe(tmp_path):
    junk = tmp_path / 'junk.tflite'
    junk.write_bytes(b'hello world' * 10)
    for path in (tmp_path / 'missing.tflite', junk):
        expected_type, _ = raised(lambda: theirs(path).close())
        actual_type, message = raised(lambda: ours(path).close())
        assert issubclass(actual_type, expected_type)
        assert str(path) in message


def test_model_without_normalization_fails_like_mediapipe(test_models):
    model = test_models['no_normalization']
    expected_type, expected_message = raised(lambda: theirs(model).close())
    actual_type, actual_message = raised(lambda: ours(model).close())
    assert actual_type is expected_type is FileNotFoundError
    assert 'NormalizationOptions' in actual_message and 'NormalizationOptions' in expected_message


@pytest.mark.parametrize('keep', [16, 1000, 120000, 240000])
def test_truncated_model_raises_a_clear_error(keep, legacy_models, tmp_path):
    truncated = tmp_path / 'truncated.tflite'
    truncated.write_bytes(legacy_models['selfie_segmentation'].read_bytes()[:keep])
    with pytest.raises(ValueError, match='truncated or corrupt|not a valid'):
        ours(truncated)


def test_a_litert_built_for_another_numpy_is_named_in_one_sentence(legacy_models, monkeypatch):
    """tflite-runtime 2.14 on numpy 1.21 (Humble's) fails so: a SystemError at load."""
    from image_segmenter_ros.engine import segmenter

    def built_for_another_numpy(**_):
        raise SystemError('<built-in method CreateWrapperFromBuffer of PyCapsule object> '
                          'returned a result with an exception set')

    monkeypatch.setattr(segmenter, 'Interpreter', built_for_another_numpy)
    with pytest.raises(RuntimeError) as raised_error:
        ours(legacy_models['selfie_segmentation'])
    message = str(raised_error.value)
    assert 'numpy %s' % np.__version__ in message and 'requirements-robot.txt' in message
    assert message.count('. ') == 0 and 'PyCapsule' not in message


def test_an_output_type_the_masks_cannot_come_from_is_refused(tmp_path):
    """A real model whose logits go through CAST to int32: refused at load, by name."""
    from mediapipe.tasks.metadata import schema_py_generated as tflite
    spec = TestModelSpec(name='int32_output', num_classes=2, seed=3)
    model = tflite.ModelT.InitFromPackedBuf(build_model(spec), 0)
    graph = model.subgraphs[0]
    logits = graph.tensors[graph.outputs[0]]
    cast_output = tflite.TensorT()
    cast_output.name, cast_output.shape = 'logits_int32', list(logits.shape)
    cast_output.type, cast_output.buffer = tflite.TensorType.INT32, 0
    graph.tensors.append(cast_output)
    code = tflite.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tflite.BuiltinOperator.CAST
    model.operatorCodes.append(code)
    cast = tflite.OperatorT()
    cast.opcodeIndex = len(model.operatorCodes) - 1
    cast.inputs, cast.outputs = [graph.outputs[0]], [len(graph.tensors) - 1]
    graph.operators.append(cast)
    graph.outputs = [len(graph.tensors) - 1]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b'TFL3')
    path = tmp_path / 'int32_output.tflite'
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(ValueError, match='output must be float32, or uint8/int8 with a '
                                         'quantization scale; it is int32'):
        ours(path)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError, match='selfie_segmentation'):
        ours('no_such_model')


@pytest.mark.parametrize('image, error', [
    (np.zeros((10, 10, 3), np.float32), 'uint8'),
    (np.zeros((10, 10, 2), np.uint8), 'shape'),
    (np.zeros((0, 10, 3), np.uint8), 'empty'),
    (np.zeros((10,), np.uint8), 'shape'),
    (np.zeros((1, 40000, 3), np.uint8), 'below 32767 pixels'),
])
def test_bad_images_raise_clear_errors(image, error, legacy_models):
    with ours(legacy_models['selfie_segmentation']) as segmenter:
        with pytest.raises(ValueError, match=error):
            segmenter.segment(image)
        with pytest.raises(TypeError, match='numpy array'):
            segmenter.segment([[1, 2, 3]])
        assert segmenter.segment(IMAGE).confidence_masks[0].shape == IMAGE.shape[:2]


def test_bad_options_name_the_option(legacy_models):
    model = legacy_models['selfie_segmentation']
    with pytest.raises(ValueError, match='running_mode'):
        ours(model, running_mode='IMAGE')
    with pytest.raises(ValueError, match='num_threads'):
        ours(model, num_threads=0)


def test_video_mode_gives_the_image_mode_result(legacy_models, megamind_frames):
    model = legacy_models['selfie_segmentation']
    with ours(model, output_category_mask=True) as image_mode, \
            ours(model, running_mode=RunningMode.VIDEO, output_category_mask=True) as video:
        for timestamp, frame in enumerate(megamind_frames):
            expected = image_mode.segment(frame)
            actual = video.segment_for_video(frame, timestamp * 33)
            np.testing.assert_array_equal(actual.category_mask, expected.category_mask)
            np.testing.assert_array_equal(actual.confidence_masks[1],
                                          expected.confidence_masks[1])


def test_live_stream_keeps_the_newest_frame_and_reports_drops(legacy_models, megamind_frames):
    results = []
    lock = threading.Lock()

    def on_result(result, image, timestamp_ms):
        with lock:
            results.append((timestamp_ms, image, result))

    submitted = {}
    with ours(legacy_models['selfie_segmentation'], running_mode=RunningMode.LIVE_STREAM,
              result_callback=on_result) as live:
        for timestamp in range(1, 61):
            frame = megamind_frames[timestamp % len(megamind_frames)]
            submitted[timestamp] = frame
            live.segment_async(frame, timestamp)
        assert wait_for(lambda: results and results[-1][0] == 60)
        dropped = live.dropped_frames
    timestamps = [t for t, _, _ in results]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)
    assert dropped > 0 and dropped + len(results) == 60
    with ours(legacy_models['selfie_segmentation']) as reference:
        for timestamp, image, result in results[-3:]:
            np.testing.assert_array_equal(image, submitted[timestamp])
            np.testing.assert_array_equal(result.confidence_masks[1],
                                          reference.segment(image).confidence_masks[1])


def test_live_stream_copies_the_frame_so_the_caller_may_reuse_its_buffer(
        legacy_models, megamind_frames):
    results = []
    buffer = megamind_frames[0].copy()
    with ours(legacy_models['selfie_segmentation'], running_mode=RunningMode.LIVE_STREAM,
              result_callback=lambda result, image, _: results.append((result, image))) as live:
        live.segment_async(buffer, 1)
        buffer[...] = 0  # the camera driver fills its buffer with the next frame
        assert wait_for(lambda: results)
    result, image = results[0]
    np.testing.assert_array_equal(image, megamind_frames[0])
    with ours(legacy_models['selfie_segmentation']) as reference:
        np.testing.assert_array_equal(result.confidence_masks[1], reference.segment(
            megamind_frames[0]).confidence_masks[1])


def test_live_stream_submissions_do_not_wait_for_the_frame_in_flight(legacy_models):
    with ours(legacy_models['selfie_segmentation'], running_mode=RunningMode.LIVE_STREAM,
              result_callback=lambda *_: None) as live:
        with live._lock:  # as while the worker runs the model
            submit = threading.Thread(target=live.segment_async, args=(IMAGE, 1))
            submit.start()
            submit.join(timeout=10.0)
            assert not submit.is_alive()


def test_a_live_stream_segmenter_dropped_without_close_ends_its_worker(legacy_models):
    live = ours(legacy_models['selfie_segmentation'], running_mode=RunningMode.LIVE_STREAM,
                result_callback=lambda *_: None)
    live.segment_async(IMAGE, 1)
    worker = live._live._thread
    dropped = weakref.ref(live)
    del live
    # The worker holds the segmenter only while it runs a frame.
    assert wait_for(lambda: gc.collect() is not None and dropped() is None)
    worker.join(timeout=10.0)
    assert not worker.is_alive()


def test_display_names_of_another_length_than_the_labels_are_refused(
        test_models, monkeypatch):
    from image_segmenter_ros.engine import segmenter

    def fewer_french_names(model):
        metadata = read_metadata(model)
        metadata.display_names['fr'] = metadata.display_names['fr'][:-1]
        return metadata

    read_metadata = segmenter.read_segmenter_metadata
    monkeypatch.setattr(segmenter, 'read_segmenter_metadata', fewer_french_names)
    with pytest.raises(ValueError, match="5 display names in locale 'fr' for 6 labels"):
        ours(test_models['multiclass_softmax'])


def test_labels_and_display_names_follow_the_locale(test_models, legacy_models):
    model = test_models['multiclass_softmax']
    with ours(model) as english, ours(model, display_names_locale='fr') as french, \
            ours(model, display_names_locale='de') as german, theirs(model) as reference:
        assert english.labels == reference.labels == [
            'background', 'hair', 'body-skin', 'face-skin', 'clothes', 'others']
        assert english.display_names == english.labels
        assert french.labels == english.labels
        assert french.display_names[1] == 'cheveux' and len(french.display_names) == 6
        assert german.display_names == english.labels
    with ours(legacy_models['selfie_segmentation']) as selfie:
        assert selfie.labels == ['background', 'selfie']
    with ours(test_models['no_labels']) as unlabelled, theirs(test_models['no_labels']) as ref:
        assert unlabelled.labels == ref.labels == []


@pytest.mark.parametrize('rotation', [90, 180, 270])
def test_rotation_returns_masks_in_the_input_orientation(rotation, legacy_models,
                                                         megamind_frames):
    """A camera mounted sideways: rotating its frame back gives the upright result."""
    frame = megamind_frames[1]
    turns = rotation // 90
    sideways = np.ascontiguousarray(np.rot90(frame, turns))
    with ours(legacy_models['selfie_segmentation'], output_category_mask=True) as segmenter:
        upright = segmenter.segment(frame)
        result = segmenter.segment(sideways, rotation_degrees=rotation)
    assert result.category_mask.shape == sideways.shape[:2]
    expected = np.rot90(upright.category_mask, turns)
    # Not bit-exact: MediaPipe's sampling grid (corners to tensor edges) is not symmetric
    # under rotation, so the model sees the frame shifted by a fraction of a pixel.
    assert (result.category_mask == expected).mean() > 0.95
    assert 0.1 < result.category_mask.mean() < 0.9


@pytest.mark.parametrize('rotation', [90, 180, 270])
def test_rotation_runs_the_model_on_what_mediapipe_feeds_it(rotation, legacy_models,
                                                            megamind_frames):
    """Our rotated masks are MediaPipe's rotated-frame masks turned back (square images)."""
    square = np.ascontiguousarray(cv2.resize(megamind_frames[1], (400, 400)))
    model = legacy_models['selfie_segmentation']
    with ours(model, output_category_mask=True) as mine, \
            theirs(model, output_category_mask=True) as reference:
        actual = mine.segment(square, rotation_degrees=rotation)
        expected = reference.segment(mp_image(square),
                                     ImageProcessingOptions(rotation_degrees=rotation))
    turns = rotation // 90
    expected_confidence = np.rot90(expected.confidence_masks[0].numpy_view().reshape(400, 400),
                                   turns)
    expected_category = np.rot90(expected.category_mask.numpy_view().reshape(400, 400), turns)
    assert np.abs(actual.confidence_masks[1] - expected_confidence).mean() < 1e-3
    agreement = (actual.category_mask == np.where(expected_category == 0, 1, 0)).mean()
    assert agreement > 0.999
    if rotation in (180, 270):  # these sample where MediaPipe samples: the same masks
        assert np.abs(actual.confidence_masks[1] - expected_confidence).max() <= 1e-4
        assert agreement == 1.0


@pytest.mark.parametrize('rotation', [0, 90])
def test_non_contiguous_views_give_the_same_masks(legacy_models, megamind_frames, rotation):
    rgb = megamind_frames[0]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # a camera's or OpenCV's BGR buffer
    views = {'every other pixel': rgb[::2, ::2], 'RGB view of a BGR buffer': bgr[:, :, ::-1],
             'RGB view of every other BGR pixel': bgr[::2, ::2, ::-1]}
    with ours(legacy_models['selfie_segmentation'], output_category_mask=True) as segmenter:
        for name, view in views.items():
            from_view = segmenter.segment(view, rotation)
            from_copy = segmenter.segment(np.ascontiguousarray(view), rotation)
            np.testing.assert_array_equal(from_view.category_mask, from_copy.category_mask,
                                          err_msg=name)
            np.testing.assert_array_equal(from_view.confidence_masks[1],
                                          from_copy.confidence_masks[1], err_msg=name)


def test_per_call_outputs_give_the_same_masks_as_both(legacy_models, megamind_frames):
    frame = megamind_frames[2]
    with ours(legacy_models['selfie_segmentation'], output_category_mask=True) as segmenter:
        both = segmenter.segment(frame)
        category = segmenter.segment(frame, output_confidence_masks=False)
        confidence = segmenter.segment(frame, output_category_mask=False)
        default = segmenter.segment(frame, output_confidence_masks=None)
    assert category.confidence_masks is None and confidence.category_mask is None
    assert category.confidences_finite is None and both.confidences_finite is True
    np.testing.assert_array_equal(category.category_mask, both.category_mask)
    for one, other in zip(confidence.confidence_masks, both.confidence_masks):
        np.testing.assert_array_equal(one, other)
    assert default.category_mask is not None and default.confidence_masks is not None


def _category_helpers():
    return [thread for thread in threading.enumerate()
            if thread.name.startswith('image_segmenter_category')]


def test_the_category_mask_made_beside_the_confidence_masks_is_the_same(test_models):
    """With two threads and three masks or more, a helper thread makes the category mask."""
    frame = np.random.default_rng(3).integers(0, 256, (48, 64, 3), np.uint8)
    model = test_models['multiclass_softmax']
    with ours(model, num_threads=1, output_category_mask=True) as alone:
        expected = alone.segment(frame)
    assert len(np.unique(expected.category_mask)) >= 3
    before = len(_category_helpers())
    two = ours(model, num_threads=2, output_category_mask=True)
    for classes in ([0, 1], [0, 1, 2], None):
        result = two.segment(frame, confidence_classes=classes)
        np.testing.assert_array_equal(result.category_mask, expected.category_mask)
        for index in classes or range(len(expected.confidence_masks)):
            np.testing.assert_array_equal(result.confidence_masks[index],
                                          expected.confidence_masks[index])
        assert len(_category_helpers()) == before + (classes != [0, 1])
    two.close()
    assert wait_for(lambda: len(_category_helpers()) == before)
    dropped = ours(model, num_threads=2, output_category_mask=True)
    dropped.segment(frame)
    assert len(_category_helpers()) == before + 1
    del dropped
    assert wait_for(lambda: gc.collect() is not None and len(_category_helpers()) == before)

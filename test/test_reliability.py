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
Reliability of the running node over real DDS: bad input, faults, signals, live updates.

Every bad frame is sent to the node process and followed by a good frame whose outputs must
equal the engine's, run in this process. Faults use real parts: broken model files, a real
model that yields NaN for dark pixels, a frame the engine's OpenCV warp cannot take.
"""

import array
from pathlib import Path
import shutil
import signal
import threading
import time
from typing import Any, Callable, Dict, List
from unittest import mock

import cv2
from image_samples import raw_message
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from image_segmenter_ros.engine import model_catalog
from image_segmenter_ros.node import input_images as ic
from image_segmenter_ros.node.overlay import render_overlay
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.qos import qos_profile_sensor_data
from ros_harness import NodeProcess, Probe, stamp, wait_until
from sensor_msgs.msg import CompressedImage, Image
from test_image_segmenter_node import (assert_outputs_match_engine, image_msg, MODEL,
                                       NodeUnderTest, OUTPUTS, pixels, round_trip, start)
import tflite_test_models

STARTUP_SEC = 20.0


@pytest.fixture(scope='module')
def frames(megamind_frames) -> List[np.ndarray]:
    """Real frames at a quarter size (180x132): many round trips stay quick."""
    return [cv2.resize(frame, (180, 132), interpolation=cv2.INTER_AREA)
            for frame in megamind_frames]


class Counted(NodeUnderTest):
    """A node under test that also tracks how many frames it must have rejected or failed."""

    rejected = 0
    failed = 0

    def expect(self, counter: str, reason: str) -> Dict[str, str]:
        """Wait for /diagnostics to count one more bad frame and name ``reason``."""
        setattr(self, counter, getattr(self, counter) + 1)
        key = 'frames failed (errors)' if counter == 'failed' else 'frames rejected'
        expected = getattr(self, counter)
        try:
            return self.diagnostics(lambda v: int(v[key]) == expected and
                                    reason in v['last %s frame' % counter])
        except AssertionError as error:
            raise AssertionError('%s\n%s\n%s' % (error, self.diagnostics(),
                                                 self.process.log)) from None

    def good_frame_still_works(self, engine: ImageSegmenter, frame: np.ndarray,
                               frame_id: str) -> None:
        msg = image_msg(frame, 'bgr8', frame_id, 100.0 + self.sent)
        outputs = round_trip(self, msg)
        assert_outputs_match_engine(outputs, msg, frame, engine)
        for name in OUTPUTS:
            if name.startswith('confidence_masks/'):
                assert np.isfinite(pixels(outputs[name], np.float32)).all()


def node_fixture(env, probe, tmp_path_factory, name: str, namespace: str, topic: str,
                 extra: List[str], msg_type: type = Image) -> Counted:
    process = start(env, tmp_path_factory, name, [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=%s' % topic,
        '-r', '__ns:=%s' % namespace, '-p', 'running_mode:=IMAGE', '-p', 'queue_size:=100'] +
        extra)
    input_topic = topic + ('/compressed' if msg_type is CompressedImage else '')
    node = Counted(probe, process, namespace, input_topic, msg_type)
    for output in OUTPUTS:
        probe.subscribe(Image, node.topic(output))
    node.wait_connected(OUTPUTS)
    return node


@pytest.fixture(scope='module')
def raw_node(env, probe, tmp_path_factory):
    node = node_fixture(env, probe, tmp_path_factory, 'raw_node', '/r', '/cam/r', [
        '-p', 'qos_overrides./cam/r.subscription.reliability:=reliable'])
    yield node
    node.stop()


@pytest.fixture(scope='module')
def compressed_node(env, probe, tmp_path_factory):
    node = node_fixture(env, probe, tmp_path_factory, 'compressed_node', '/z', '/cam/z', [
        '-p', 'input_transport:=compressed',
        '-p', 'qos_overrides./cam/z/compressed.subscription.reliability:=reliable'],
        CompressedImage)
    yield node
    node.stop()


def raw(frame: np.ndarray, **changes: Any) -> Image:
    """Return a real rgb8 frame as a message, then apply field ``changes``."""
    msg = image_msg(frame, 'rgb8', 'bad', 50.0)
    for field, value in changes.items():
        setattr(msg, field, value(msg) if callable(value) else value)
    return msg


def packed(pixels: np.ndarray, encoding: str, frame_id: str) -> Image:
    """Return ``pixels`` already in ``encoding``'s layout as a message (any size, even 1x1)."""
    msg = Image(**dict(vars(raw_message(pixels, encoding)), data=array.array(
        'B', pixels.tobytes())))
    msg.header.frame_id, msg.header.stamp = frame_id, stamp(55.0)
    return msg


def mono8_as(encoding: str) -> Callable[[np.ndarray], Image]:
    """Send a mono8 camera's buffer under another encoding's name."""
    def build(frame: np.ndarray) -> Image:
        msg = image_msg(frame, 'mono8', 'bad', 50.0)
        msg.encoding = encoding
        return msg
    return build


BAD_RAW = {
    'data shorter than height*step': (
        lambda f: raw(f, data=lambda m: m.data[:len(m.data) - 1]), 'data has'),
    'step shorter than a row': (
        lambda f: raw(f, step=lambda m: m.step - 1), 'shorter than a rgb8 row'),
    'step not a multiple of the 16-bit sample': (
        lambda f: raw(f, encoding='mono16', step=lambda m: 2 * m.width + 1), 'is odd'),
    'width 0': (lambda f: raw(f, width=0), 'empty'),
    'height 0': (lambda f: raw(f, height=0), 'empty'),
    'larger than max_input_pixels, tiny buffer': (
        lambda f: raw(f, width=5000, height=4000, step=15000,
                      data=array.array('B', bytes(16))),
        'larger than max_input_pixels'),
    'unknown encoding': (lambda f: raw(f, encoding='hsv8'), "encoding 'hsv8'"),
    'empty encoding': (lambda f: raw(f, encoding=''), "encoding ''"),
    'big-endian rgb16': (lambda f: raw(f, encoding='rgb16', is_bigendian=True,
                                       step=lambda m: 2 * m.step), "encoding 'rgb16'"),
    'mismatched: mono8 buffer labelled rgb8': (mono8_as('rgb8'), 'shorter than a rgb8 row'),
    'mismatched: mono8 buffer labelled mono16': (mono8_as('mono16'),
                                                 'shorter than a mono16 row'),
    'odd width in yuv422 (1x1)': (lambda f: packed(f[:1, :1, :2], 'yuv422', 'bad'),
                                  'even width'),
}


@pytest.mark.parametrize('case', BAD_RAW)
def test_bad_raw_frame_is_rejected_by_name_and_the_next_frame_works(raw_node, engine, frames,
                                                                    case):
    build, reason = BAD_RAW[case]
    raw_node.publish(build(frames[0]))
    raw_node.expect('rejected', reason)
    raw_node.good_frame_still_works(engine, frames[1], 'after ' + case)


def test_rejections_warn_at_most_once_per_period_and_kind(raw_node, frames):
    warnings = [line for line in raw_node.process.log.splitlines()
                if 'Rejected a frame from /cam/r: ' in line]
    for reason in ('data has', 'shorter than a rgb8 row', 'is odd', 'empty',
                   'larger than max_input_pixels', 'even width'):
        assert any(reason in line for line in warnings), (reason, warnings)
    before = raw_node.process.log.count('Unsupported image encoding')
    for encoding in ('abc8', 'def8', '', 'rgb16', 'xyz'):
        raw_node.publish(raw(frames[0], encoding=encoding))
    raw_node.rejected += 4
    raw_node.expect('rejected', "encoding 'xyz'")
    # Five frames of one kind of problem within a period: at most one more warning.
    assert raw_node.process.log.count('Unsupported image encoding') - before <= 1
    assert 'Unsupported image encoding' in raw_node.process.log


def test_edge_cases_that_are_valid_are_processed(raw_node, engine, frames):
    """1x1 images, 8-bit rows padded by a byte, big-endian mono16: decoded, not rejected."""
    gray = cv2.cvtColor(frames[2], cv2.COLOR_RGB2GRAY)
    big_endian = image_msg(frames[2], 'mono16', 'mono16_big_endian', 60.0)
    big_endian.data = array.array('B', (gray.astype(np.uint16) * 257).astype('>u2').tobytes())
    big_endian.is_bigendian = True
    cases = [packed(frames[0][:1, :1], 'rgb8', 'one_pixel'),
             packed(gray[:1, :1], 'mono8', 'one_gray_pixel'),
             image_msg(frames[1], 'rgb8', 'padded_by_one', 63.0, padding=1), big_endian]
    for msg in cases:
        decoded = ic.image_to_array(msg)
        assert_outputs_match_engine(round_trip(raw_node, msg), msg, decoded, engine)
    np.testing.assert_array_equal(ic.image_to_array(cases[-1]), gray)


def set_parameters(probe: Probe, node: str, **values: Any) -> Any:
    """Set parameters of ``node`` in one atomic request."""
    kinds = {int: ('integer_value', ParameterType.PARAMETER_INTEGER),
             float: ('double_value', ParameterType.PARAMETER_DOUBLE)}
    request = SetParametersAtomically.Request(parameters=[
        Parameter(name=name, value=ParameterValue(
            type=kinds[type(value)][1], **{kinds[type(value)][0]: value}))
        for name, value in values.items()])
    return probe.call(SetParametersAtomically, node + '/set_parameters_atomically',
                      request).result


def test_max_input_pixels_is_a_runtime_parameter(raw_node, engine, frames):
    height, width = frames[0].shape[:2]
    assert set_parameters(raw_node.probe, '/r/image_segmenter',
                          max_input_pixels=height * width - 1).successful
    raw_node.publish(image_msg(frames[0], 'rgb8', 'too_big', 70.0))
    raw_node.expect('rejected', 'larger than max_input_pixels (%d)' % (height * width - 1))
    assert set_parameters(raw_node.probe, '/r/image_segmenter',
                          max_input_pixels=4096 * 4096).successful
    raw_node.good_frame_still_works(engine, frames[0], 'fits again')
    refused = set_parameters(raw_node.probe, '/r/image_segmenter', max_input_pixels=0)
    assert not refused.successful


def test_a_frame_too_wide_for_the_warp_is_rejected_and_the_next_frame_works(
        raw_node, engine, frames):
    # A valid 40000x1 frame: OpenCV's remap addresses pixels with 16-bit coordinates, so the
    # engine refuses sides of 32767 or more with a reason, before any work.
    wide = image_msg(np.tile(frames[0][:1], (1, 223, 1))[:, :40000], 'rgb8', 'wide', 80.0)
    raw_node.publish(wide)
    raw_node.expect('rejected', 'image sides must be below 32767 pixels')
    raw_node.good_frame_still_works(engine, frames[2], 'after the wide frame')


def compressed(frame: np.ndarray, extension: str, frame_id: str) -> CompressedImage:
    data = cv2.imencode(extension, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()
    msg = CompressedImage(format=extension[1:].replace('jpg', 'jpeg'),
                          data=array.array('B', data))
    msg.header.frame_id, msg.header.stamp = frame_id, stamp(90.0)
    return msg


def corrupted(extension: str, change: Callable[[bytes], bytes]) -> Callable:
    def build(frame: np.ndarray) -> CompressedImage:
        msg = compressed(frame, extension, 'bad')
        msg.data = array.array('B', change(bytes(msg.data)))
        return msg
    return build


def png_claiming(width: int, height: int) -> Callable[[bytes], bytes]:
    """Rewrite the size in a png header (and its CRC), leaving the pixels as they are."""
    def change(data: bytes) -> bytes:
        import zlib
        ihdr = b'IHDR' + width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + data[24:29]
        return data[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, 'big') + data[33:]
    return change


BAD_COMPRESSED = {
    'truncated jpeg': (corrupted('.jpg', lambda d: d[:len(d) // 2]), 'truncated jpeg'),
    'truncated png': (corrupted('.png', lambda d: d[:-1]), 'truncated png'),
    'corrupt jpeg header': (corrupted('.jpg', lambda d: d[:3] + bytes(200) + d[203:]),
                            'corrupt jpeg'),
    'corrupt png data': (corrupted('.png', lambda d: d[:60] + bytes(400) + d[460:]),
                         'Cannot decode'),
    'empty data': (corrupted('.png', lambda d: b''), 'no data'),
    'neither jpeg nor png': (lambda f: CompressedImage(
        format='bmp', data=array.array('B', cv2.imencode('.bmp', f)[1].tobytes())),
        'neither a jpeg nor a png'),
    'png larger than max_input_pixels': (corrupted('.png', png_claiming(100000, 100000)),
                                         'larger than max_input_pixels'),
}


@pytest.mark.parametrize('case', BAD_COMPRESSED)
def test_bad_compressed_frame_is_rejected_and_the_next_frame_works(compressed_node, engine,
                                                                   frames, case):
    build, reason = BAD_COMPRESSED[case]
    compressed_node.publish(build(frames[0]))
    compressed_node.expect('rejected', reason)
    good = compressed(frames[1], '.png', 'after ' + case)
    assert_outputs_match_engine(round_trip(compressed_node, good), good, frames[1], engine)


def nan_model(path: Path) -> Path:
    """
    Write a real two-class sigmoid model whose output is NaN where red is below half.

    Hidden unit 0 is relu(red - 0.5); the output weights are +inf, so a hidden 0 gives
    0 * inf = NaN and anything else gives +inf, whose sigmoid is a finite 1.
    """
    spec = tflite_test_models.TestModelSpec(
        name='nan_when_dark', num_classes=2, activation='SIGMOID',
        labels=['background', 'bright'], normalization=(0.0, 255.0))
    weights = {name: np.zeros_like(value)
               for name, value in tflite_test_models.make_weights(spec).items()}
    weights['conv1/weights'][0, 1, 1, 0] = 1.0
    weights['conv1/bias'][0] = -0.5
    weights['conv2/weights'][:, 0, 0, 0] = np.inf
    with mock.patch.object(tflite_test_models, 'make_weights', return_value=weights):
        path.write_bytes(tflite_test_models.build_model(spec))
    return path


def test_nan_from_the_model_is_never_published(env, probe, tmp_path_factory):
    model = nan_model(tmp_path_factory.mktemp('nan') / 'nan_when_dark.tflite')
    process = start(env, tmp_path_factory, 'nan_node', [
        '-p', 'model:=%s' % model, '-r', 'image:=/cam/n', '-r', '__ns:=/n',
        '-p', 'running_mode:=IMAGE', '-p', 'qos_overrides./cam/n.subscription.reliability:='
        'reliable'])
    node = Counted(probe, process, '/n', '/cam/n')
    outputs = ['category_mask', 'confidence_masks/background', 'confidence_masks/bright']
    for name in outputs:
        probe.subscribe(Image, node.topic(name))
    node.wait_connected(outputs)
    dark = np.full((48, 64, 3), (200, 90, 90), np.uint8)
    dark[10:20, 10:20, 0] = 30
    node.publish(image_msg(dark, 'rgb8', 'dark', 1.0))
    node.expect('failed', 'NaN')
    bright = image_msg(np.full((48, 64, 3), (200, 90, 90), np.uint8), 'rgb8', 'bright', 2.0)
    node.publish(bright)
    options = ImageSegmenterOptions(model_path=str(model), output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        expected = segmenter.segment(ic.image_to_array(bright))
    for index, name in enumerate(outputs[1:]):
        out = probe.wait_for(node.topic(name), lambda m: m.header.frame_id == 'bright')[0]
        np.testing.assert_array_equal(pixels(out, np.float32), expected.confidence_masks[index])
        assert np.isfinite(pixels(out, np.float32)).all()
    for name in outputs:
        assert not probe.messages(node.topic(name), lambda m: m.header.frame_id == 'dark')
    node.stop()


def broken_models(directory: Path) -> Dict[str, Any]:
    """Each start-up fault: (model parameter, environment change, phrase of the sentence)."""
    real = model_catalog.resolve_model(MODEL).read_bytes()
    (directory / 'truncated.tflite').write_bytes(real[:len(real) // 2])
    (directory / 'not_tflite.tflite').write_bytes(b'<html>404 Not Found</html>' * 40)
    wrong, short = directory / 'cache', directory / 'short_cache'
    wrong.mkdir()
    short.mkdir()
    # The pinned file with one byte changed: the same size, another SHA-256.
    changed = bytearray(real)
    changed[len(changed) // 2] ^= 0xFF
    (wrong / model_catalog.resolve_model(MODEL).name).write_bytes(bytes(changed))
    # A real TFLite file, but not the one the manifest pins for this name (another size).
    shutil.copy(model_catalog.resolve_model('selfie_segmentation_landscape'),
                short / model_catalog.resolve_model(MODEL).name)
    return {
        'missing file': (str(directory / 'missing.tflite'), {}, 'neither an existing model '
                         'file nor a known model name'),
        'truncated': (str(directory / 'truncated.tflite'), {}, 'truncated or corrupt'),
        'not a TFLite file': (str(directory / 'not_tflite.tflite'), {}, 'is not a TFLite file'),
        'wrong checksum': (MODEL, {model_catalog.MODEL_DIR_ENV: str(wrong)}, 'has sha256'),
        'wrong size': (MODEL, {model_catalog.MODEL_DIR_ENV: str(short)}, 'bytes but'),
        'unknown model name': ('selfie_segmenter_xl', {}, 'known names: selfie_segmentation'),
    }


def test_model_faults_stop_the_node_with_one_sentence(env, tmp_path_factory):
    directory = tmp_path_factory.mktemp('broken_models')
    processes = {case: (NodeProcess(['-p', 'model:=%s' % model], dict(env, **changes),
                                    directory / ('%s.log' % case.replace(' ', '_'))), phrase)
                 for case, (model, changes, phrase) in broken_models(directory).items()}
    for case, (process, phrase) in processes.items():
        assert process.wait(STARTUP_SEC) == 1, (case, process.log)
        lines = [line for line in process.log.splitlines() if line.strip()]
        assert len(lines) == 1 and '[FATAL]' in lines[0], (case, process.log)
        assert "Parameter 'model'" in lines[0] and phrase in lines[0], (case, lines[0])


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_signal_under_load_stops_cleanly(env, probe, tmp_path_factory, frames, sig):
    namespace = '/s%d' % sig
    process = start(env, tmp_path_factory, 'signal_%d' % sig, [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam%s' % namespace,
        '-r', '__ns:=%s' % namespace])
    node = NodeUnderTest(probe, process, namespace, '/cam' + namespace,
                         input_qos=qos_profile_sensor_data)
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])
    msg = image_msg(frames[0], 'rgb8', 'load', 0.0)
    stop = threading.Event()

    def stream():
        while not stop.is_set():
            msg.header.stamp = stamp(time.time())
            node.publish(msg)
            time.sleep(0.01)
    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        probe.wait_for(node.topic('category_mask'), count=5)
        sent = time.monotonic()
        process.process.send_signal(sig)
        code = process.wait(5.0)
        elapsed = time.monotonic() - sent
    finally:
        stop.set()
        streamer.join()
    log = process.log
    # Within the wait above; how fast (about a second) is measured by `make stress`.
    assert code == 0, (code, elapsed, log)
    for spam in ('Traceback', 'ERROR', 'Failed', 'Exception', 'Error', 'did not stop'):
        assert spam not in log, log


def test_parameter_updates_under_load_land_between_frames(raw_node, engine, frames):
    """
    Flip rotation and overlay opacity together while frames stream: each frame uses one pair.

    Rotation changes the masks and opacity the overlay, so a frame that read one parameter
    before an update and the other after it would match neither pair.
    """
    states = [(0, 0.2), (180, 0.8)]
    # Start from the first pair: frames segmented before the first flip lands use it too.
    assert set_parameters(raw_node.probe, '/r/image_segmenter', rotation_degrees=states[0][0],
                          overlay_alpha=states[0][1]).successful
    client = raw_node.probe.node.create_client(SetParametersAtomically,
                                               '/r/image_segmenter/set_parameters_atomically')
    wait_until(client.service_is_ready, 10.0, 'the parameter service')
    stop = threading.Event()
    flips = []

    def flip():
        while not stop.is_set():
            rotation, alpha = states[len(flips) % 2]
            request = SetParametersAtomically.Request(parameters=[
                Parameter(name='rotation_degrees', value=ParameterValue(
                    type=ParameterType.PARAMETER_INTEGER, integer_value=rotation)),
                Parameter(name='overlay_alpha', value=ParameterValue(
                    type=ParameterType.PARAMETER_DOUBLE, double_value=alpha))])
            future = client.call_async(request)
            wait_until(future.done, 10.0, 'a parameter update')
            flips.append(future.result().result.successful)
            time.sleep(0.01)
    flipper = threading.Thread(target=flip)
    flipper.start()
    sent = []
    try:
        # At least 60 frames, and for as long as it takes the updates to flip a few times.
        while len(sent) < 60 or len(flips) < 6:
            index = len(sent)
            msg = image_msg(frames[index % len(frames)], 'rgb8', 'flip_%d' % index, 200 + index)
            raw_node.publish(msg)
            sent.append(msg)
            time.sleep(0.015)
        for name in ('category_mask', 'overlay'):  # topics need not arrive in order
            raw_node.probe.wait_for(raw_node.topic(name),
                                    lambda m: m.header.frame_id == sent[-1].header.frame_id,
                                    timeout=20.0)
    finally:
        stop.set()
        flipper.join()
        raw_node.probe.node.destroy_client(client)
    assert set_parameters(raw_node.probe, '/r/image_segmenter', rotation_degrees=0,
                          overlay_alpha=0.5).successful
    assert all(flips), flips
    seen = set()
    for msg in sent:
        def output(name):
            return raw_node.probe.messages(raw_node.topic(name),
                                           lambda m: m.header.frame_id == msg.header.frame_id)[0]
        category = pixels(output('category_mask'), np.uint8)
        overlay = pixels(output('overlay'), np.uint8)
        image = ic.image_to_array(msg)
        matches = [state for state in states
                   if np.array_equal(category, engine.segment(image, state[0]).category_mask) and
                   np.array_equal(overlay, render_overlay(image, category, state[1],
                                                          'rgb8')[0])]
        assert matches, 'frame %s mixes parameter values' % msg.header.frame_id
        seen.update(matches)
    assert seen == set(states), seen

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
The image_segmenter node over real rclpy and Fast DDS on loopback, with real models and frames.

Nodes run as the installed executable with the arguments the launch file passes
(``--params-file config/<model>.yaml -r image:=<camera> -p ...``); a probe node in this
process publishes camera frames and checks every output against the engine run in-process.
"""

import array
from pathlib import Path
import signal
import threading
import time
from typing import Any, Dict, List, Sequence

import cv2
from image_samples import encode_pixels, PADDING, raw_message
from image_segmenter_ros import ImageSegmenter
from image_segmenter_ros.engine import model_catalog
from image_segmenter_ros.node import input_images as ic
from image_segmenter_ros.node.overlay import render_overlay
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from ros_harness import (LATCHED, NodeProcess, PACKAGE_ROOT, Probe, RELIABLE, stamp,
                         stamp_seconds, wait_until)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
import yaml

ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422', 'yuv422_yuy2',
             'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8')
CONFIG_FILES = sorted((PACKAGE_ROOT / 'config').glob('*.yaml'))
MODEL = 'selfie_segmentation'
CLASSES = ('background', 'selfie')
STARTUP_SEC = 20.0


@pytest.fixture(scope='module')
def small_frames(megamind_frames) -> List[np.ndarray]:
    """Real frames at half size (360x264), so a dozen encodings cross DDS quickly."""
    return [cv2.resize(frame, (360, 264), interpolation=cv2.INTER_AREA)
            for frame in megamind_frames]


class NodeUnderTest:
    """One node process and the probe-side ends of its topics."""

    def __init__(self, probe: Probe, process: NodeProcess, namespace: str, input_topic: str,
                 input_type: type = Image, input_qos: Any = RELIABLE):
        self.probe, self.process, self.namespace = probe, process, namespace
        self.input_topic = input_topic
        self.input = probe.node.create_publisher(input_type, input_topic, input_qos)
        self.sent = 0

    def topic(self, name: str) -> str:
        return '%s/%s' % (self.namespace, name)

    def publish(self, msg: Any) -> None:
        self.input.publish(msg)
        self.sent += 1

    def wait_connected(self, outputs: List[str]) -> None:
        """Wait until the graph links the node to the probe both ways."""
        node = self.probe.node
        # A matched writer: reliable input is then never lost, even the first frame.
        wait_until(lambda: self.input.get_subscription_count() >= 1 and all(
            node.count_publishers(self.topic(name)) >= 1 for name in outputs), STARTUP_SEC,
            'the node on %s to connect:\n%s' % (self.input_topic, self.process.log))
        # The node's own view of our subscriptions: it computes only what has subscribers.
        self.diagnostics(lambda values: set(outputs) <= set(
            values['outputs with subscribers'].split(', ')))

    def warm_up(self, frame: np.ndarray, outputs: List[str], first_second: float) -> int:
        """
        Send frames until one comes back on every output; return how many were sent.

        The node computes only outputs it sees subscribers on; once a frame has come back, it
        sees ours, and a sequence sent next loses nothing. Stamps increase from
        ``first_second``, as VIDEO mode needs.
        """
        for attempt in range(50):
            msg = image_msg(frame, 'bgr8', 'warm_up_%d' % attempt, first_second + attempt)
            self.publish(msg)
            try:
                for name in outputs:
                    self.probe.wait_for(self.topic(name),
                                        lambda out: out.header.frame_id.startswith('warm_up'),
                                        timeout=0.2)
                return attempt + 1
            except AssertionError:
                continue
        raise AssertionError('no warm-up frame came back:\n%s' % self.process.log)

    def diagnostics(self, predicate=lambda values: True, timeout: float = 10.0) -> Dict:
        """Key/values of this node's next /diagnostics status that satisfies ``predicate``."""
        name = '%s/image_segmenter: segmentation' % self.namespace

        def matching():
            for msg in reversed(self.probe.messages('/diagnostics')):
                for status in msg.status:
                    if status.name == name:
                        values = {kv.key: kv.value for kv in status.values}
                        return values if predicate(values) else None
        return wait_until(matching, timeout, 'diagnostics of %s' % name)

    def stop(self, sig: int = signal.SIGINT) -> None:
        code = self.process.stop(sig)
        assert code == 0, 'exit code %d:\n%s' % (code, self.process.log)


def start(env, tmp_path_factory, name: str, ros_args: List[str]) -> NodeProcess:
    log = tmp_path_factory.mktemp('logs') / ('%s.log' % name)
    return NodeProcess(ros_args, env, log)


def image_msg(frame: np.ndarray, encoding: str, frame_id: str, seconds: float,
              padding: int = 0) -> Image:
    fields = vars(raw_message(encode_pixels(frame, encoding), encoding, padding))
    fields['data'] = array.array('B', fields['data'])
    msg = Image(**fields)
    msg.header.frame_id, msg.header.stamp = frame_id, stamp(seconds)
    return msg


def pixels(msg: Image, dtype: Any) -> np.ndarray:
    """Return the array of an output image, checking its layout on the way."""
    channels = {'mono8': 1, '32FC1': 1, 'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4}
    count = channels[msg.encoding]
    assert msg.step == msg.width * count * np.dtype(dtype).itemsize
    assert not msg.is_bigendian
    values = np.frombuffer(msg.data, dtype)
    return values.reshape((msg.height, msg.width) + ((count,) if count > 1 else ()))


OUTPUTS = ['category_mask', 'overlay'] + ['confidence_masks/' + name for name in CLASSES]


class Camera:
    """Stream real frames at 30 Hz, each with a new frame_id and the time as stamp."""

    def __init__(self, node: NodeUnderTest, frames: Sequence[np.ndarray], prefix: str = 'f'):
        self.node, self.frames, self.prefix = node, frames, prefix
        self.sent: Dict[str, int] = {}  # frame_id -> index of its picture
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            frame_id = '%s%d' % (self.prefix, count)
            self.sent[frame_id] = count % len(self.frames)
            msg = image_msg(self.frames[count % len(self.frames)], 'rgb8', frame_id, 0.0)
            msg.header.stamp = stamp(time.time())
            self.node.publish(msg)
            count += 1
            time.sleep(1 / 30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def round_trip(node: NodeUnderTest, msg: Any, outputs: Sequence[str] = tuple(OUTPUTS),
               timeout: float = 5.0) -> Dict[str, Image]:
    """Send a frame (again if DDS discovery lost it) and collect each output of it."""
    frame_id = msg.header.frame_id
    for attempt in range(3):
        node.publish(msg)
        try:
            return {name: node.probe.wait_for(node.topic(name),
                                              lambda out: out.header.frame_id == frame_id,
                                              timeout=timeout)[0] for name in outputs}
        except AssertionError:
            if attempt == 2:
                raise


def assert_outputs_match_engine(outputs: Dict[str, Image], msg: Any, decoded: np.ndarray,
                                engine: ImageSegmenter, alpha: float = 0.5) -> None:
    expected = engine.segment(decoded)
    height, width = decoded.shape[:2]
    for name, out in outputs.items():
        assert out.header == msg.header, name
        assert (out.height, out.width) == (height, width), name
    category = outputs['category_mask']
    assert category.encoding == 'mono8'
    np.testing.assert_array_equal(pixels(category, np.uint8), expected.category_mask)
    for index, name in enumerate(CLASSES):
        out = outputs['confidence_masks/' + name]
        assert out.encoding == '32FC1'
        np.testing.assert_array_equal(pixels(out, np.float32), expected.confidence_masks[index])
    picture, encoding = render_overlay(decoded, expected.category_mask, alpha,
                                       getattr(msg, 'encoding', None))
    assert outputs['overlay'].encoding == encoding
    np.testing.assert_array_equal(pixels(outputs['overlay'], np.uint8), picture)


# Acceptance 1 and 3: one IMAGE-mode node, reliable input so every frame sent is counted.

BAD_FRAMES = 2


@pytest.fixture(scope='module')
def image_node(env, probe, tmp_path_factory):
    process = start(env, tmp_path_factory, 'image_node', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/image_raw',
        '-r', '__ns:=/a', '-p', 'running_mode:=IMAGE', '-p', 'queue_size:=100',
        '-p', 'qos_overrides./cam/image_raw.subscription.reliability:=reliable'])
    node = NodeUnderTest(probe, process, '/a', '/cam/image_raw')
    for name in OUTPUTS:
        probe.subscribe(Image, node.topic(name))
    node.wait_connected(OUTPUTS)
    yield node
    node.stop()


@pytest.mark.parametrize('padding', [0, PADDING])
@pytest.mark.parametrize('encoding', ENCODINGS)
def test_outputs_have_the_input_header_size_and_the_engine_values(
        image_node, engine, small_frames, encoding, padding):
    msg = image_msg(small_frames[ENCODINGS.index(encoding) % len(small_frames)], encoding,
                    'camera_%s_%d' % (encoding, padding), 1000.0 + image_node.sent)
    outputs = round_trip(image_node, msg)
    assert_outputs_match_engine(outputs, msg, ic.image_to_array(msg), engine)


def test_bad_frames_are_rejected_and_the_next_good_frame_is_processed(
        image_node, engine, small_frames):
    short = image_msg(small_frames[0], 'rgb8', 'bad', 2000.0)
    short.data = short.data[:len(short.data) // 2]
    unknown = image_msg(small_frames[0], 'rgb8', 'bad', 2001.0)
    unknown.encoding = '16UC3'
    for msg in (short, unknown):
        image_node.publish(msg)
    wait_until(lambda: image_node.process.log.count('Rejected a frame') >= 2, 10.0,
               'a rejection warning for each kind of problem')
    log = image_node.process.log
    assert 'data has' in log and 'Unsupported image encoding' in log
    good = image_msg(small_frames[1], 'bgr8', 'good_after_bad', 2002.0)
    assert_outputs_match_engine(round_trip(image_node, good), good,
                                small_frames[1], engine)


def test_runtime_parameter_changes_are_validated(image_node, engine, small_frames):
    def set_parameter(name: str, kind: int, **value: Any) -> Any:
        request = SetParameters.Request(parameters=[Parameter(
            name=name, value=ParameterValue(type=kind, **value))])
        return image_node.probe.call(SetParameters, '/a/image_segmenter/set_parameters',
                                     request).results[0]

    # Refused in the sentences of the start-up.
    rejected = [
        (set_parameter('overlay_alpha', ParameterType.PARAMETER_DOUBLE, double_value=1.5),
         "Parameter 'overlay_alpha' must be a floating-point number from 0.0 to 1.0, got 1.5."),
        (set_parameter('rotation_degrees', ParameterType.PARAMETER_INTEGER, integer_value=45),
         "Parameter 'rotation_degrees' must be an integer from 0 to 270 in steps of 90, "
         'got 45.'),
        (set_parameter('model_directories', ParameterType.PARAMETER_STRING_ARRAY,
                       string_array_value=['/']), 'read-only parameter: model_directories'),
        (set_parameter('overlay_alpha', ParameterType.PARAMETER_STRING, string_value='high'),
         "Parameter 'overlay_alpha' must be a floating-point number from 0.0 to 1.0, got high."),
    ]
    for result, reason in rejected:
        assert not result.successful and reason in result.reason, result.reason
    assert set_parameter('overlay_alpha', ParameterType.PARAMETER_DOUBLE,
                         double_value=0.25).successful
    msg = image_msg(small_frames[2], 'rgba8', 'alpha_quarter', 3000.0)
    assert_outputs_match_engine(round_trip(image_node, msg), msg, ic.image_to_array(msg),
                                engine, alpha=0.25)


def test_incompatible_subscriber_gets_a_warning_that_says_what_to_change(image_node):
    image_node.probe.subscribe(Image, '/a/category_mask', LATCHED)
    wait_until(lambda: 'incompatible' in image_node.process.log, 10.0,
               'the incompatible QoS warning:\n%s' % image_node.process.log)
    assert "qos_overrides./a/category_mask.publisher.durability' to transient_local" in \
        image_node.process.log


def test_late_subscriber_receives_the_labels(image_node):
    image_node.probe.subscribe(String, '/a/labels', LATCHED)
    labels = yaml.safe_load(image_node.probe.wait_for('/a/labels')[0].data)
    assert labels['model'] == MODEL and labels['display_names_locale'] == 'en'
    assert [(c['index'], c['name'], c['display_name'], c['confidence_topic'])
            for c in labels['classes']] == [
        (0, 'background', 'background', 'confidence_masks/background'),
        (1, 'selfie', 'selfie', 'confidence_masks/selfie')]
    assert labels['classes'][1]['color'] != labels['classes'][0]['color']


def test_diagnostics_count_what_was_sent(image_node):
    def accounted(values: Dict) -> int:
        return sum(int(values[key]) for key in (
            'frames processed', 'frames rejected', 'frames skipped (no subscribers)'))

    # Every frame sent is received, and each one ends processed, rejected or skipped (the last
    # may still be in the worker when a status counts it received).
    values = image_node.diagnostics(
        lambda v: int(v['frames received']) == image_node.sent
        and accounted(v) == image_node.sent)
    assert int(values['frames rejected']) == BAD_FRAMES
    assert int(values['frames dropped']) == 0
    assert int(values['frames processed']) >= 2 * len(ENCODINGS) + 2
    assert values['model'] == MODEL and values['running mode'] == 'IMAGE'
    assert values['input topic'] == '/cam/image_raw'
    assert values['outputs with subscribers'] == (
        'category_mask, confidence_masks/background, confidence_masks/selfie, overlay')
    for key in ('processing time p50 (ms)', 'latency p90 (ms)', 'latency max (ms)'):
        assert float(values[key]) > 0.0


def test_compressed_input(env, probe, tmp_path_factory, engine, megamind_frames):
    process = start(env, tmp_path_factory, 'compressed_node', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/image_raw',
        '-r', '__ns:=/d', '-p', 'input_transport:=compressed',
        '-p', 'qos_overrides./cam/image_raw/compressed.subscription.reliability:=reliable'])
    node = NodeUnderTest(probe, process, '/d', '/cam/image_raw/compressed', CompressedImage)
    bgr = cv2.cvtColor(megamind_frames[0], cv2.COLOR_RGB2BGR)
    frames = {}
    for extension, fmt in (('.jpg', 'jpeg'), ('.png', 'png')):
        frames[fmt] = CompressedImage(format=fmt, data=array.array(
            'B', cv2.imencode(extension, bgr)[1].tobytes()))
        frames[fmt].header.frame_id, frames[fmt].header.stamp = 'compressed_' + fmt, stamp(4e3)
    # Nobody listens yet: the frame is counted and skipped, no inference.
    node.wait_connected([])
    node.publish(frames['png'])
    values = node.diagnostics(lambda v: v['frames received'] == '1')
    assert values['frames skipped (no subscribers)'] == '1' and values['frames processed'] == '0'
    for name in OUTPUTS:
        probe.subscribe(Image, node.topic(name))
    node.wait_connected(OUTPUTS)
    for msg in frames.values():
        decoded = ic.compressed_to_array(msg)
        assert_outputs_match_engine(round_trip(node, msg), msg, decoded, engine)
    node.stop(signal.SIGTERM)


# Acceptance 2: every parameter file starts the node; invalid values are refused clearly.

INVALID_STARTUPS = [
    (['-p', 'running_mode:=FAST'],
     "Parameter 'running_mode' must be one of IMAGE, VIDEO, LIVE_STREAM, got 'FAST'."),
    (['-p', 'num_threads:=0'], "Parameter 'num_threads' must be an integer from 1 to 64, got 0."),
    (['-p', 'overlay_alpha:=1.5'],
     "Parameter 'overlay_alpha' must be a floating-point number from 0.0 to 1.0, got 1.5."),
    (['-p', 'overlay_alpha:=2'],
     "Parameter 'overlay_alpha' must be a floating-point number from 0.0 to 1.0, got 2.0."),
    (['-r', '__ns:=/cfg_bad', '-p', 'qos_overrides./cfg_bad/overlay.publisher.depth:=-1'],
     "Parameter 'qos_overrides./cfg_bad/overlay.publisher.depth' must be a positive integer, "
     'got -1.'),
    (['-r', '__ns:=/cfg_bad', '-p', 'qos_overrides./cfg_bad/overlay.publisher.depth:=0'],
     "Parameter 'qos_overrides./cfg_bad/overlay.publisher.depth' must be a positive integer, "
     'got 0.'),
    (['-r', '__ns:=/cfg_bad', '-p',
      'qos_overrides./cfg_bad/category_mask.publisher.reliability:=fast'],
     "Parameter 'qos_overrides./cfg_bad/category_mask.publisher.reliability' must be one of "
     'reliable, best_effort, system_default, got fast.'),
    (['-r', '__ns:=/cfg_bad', '-p', 'qos_overrides./cfg_bad/overlay.publisher.depth:=ten'],
     "Parameter 'qos_overrides./cfg_bad/overlay.publisher.depth' must be a positive integer, "
     'got ten.'),
    (['-p', 'rotation_degrees:=45'], "Parameter 'rotation_degrees' must be an integer from 0 "
                                     'to 270 in steps of 90, got 45.'),
    (['-p', 'input_transport:=theora'],
     "Parameter 'input_transport' must be one of raw, compressed, got 'theora'."),
    (['-p', 'model_selection:=2'],
     "Parameter 'model_selection' must be an integer from 0 to 1, got 2."),
    (['-p', 'output_category_mask:=false', '-p', 'output_confidence_masks:=false'],
     "Parameters 'output_category_mask' and 'output_confidence_masks' are both false"),
    (['-p', 'model:=/nonexistent/model.tflite'], "Parameter 'model' ('/nonexistent/model"),
]


def model_available(config: Path) -> bool:
    model = yaml.safe_load(config.read_text())['/**']['ros__parameters']['model']
    try:
        model_catalog.resolve_model(model)
    except FileNotFoundError:
        return False
    return True


def test_every_config_starts_and_invalid_values_are_refused(env, probe, tmp_path_factory):
    configs = {config: start(env, tmp_path_factory, 'config_%s' % config.stem, [
        '--params-file', str(config.relative_to(PACKAGE_ROOT)), '-r', 'image:=/cam/image_raw',
        '-r', '__ns:=/cfg%d' % index]) for index, config in enumerate(CONFIG_FILES)}
    assert len(CONFIG_FILES) >= 7
    for index, (config, process) in enumerate(configs.items()):
        if model_available(config):
            probe.subscribe(String, '/cfg%d/labels' % index, LATCHED)
            labels = probe.wait_for('/cfg%d/labels' % index, timeout=STARTUP_SEC)[0]
            assert yaml.safe_load(labels.data)['model'] == config.stem
            code = process.stop(signal.SIGTERM)
            assert code == 0, process.log
        else:  # Not downloadable here: the node must say how to fetch it and exit.
            assert process.wait(STARTUP_SEC) == 1, process.log
            assert 'has not been fetched yet' in process.log and 'fetch_models' in process.log
            assert 'Traceback' not in process.log
    # Started after the first batch has finished: two cores start a dozen nodes at a time.
    invalid = [(start(env, tmp_path_factory, 'invalid_%d' % index, [
        '--params-file', 'config/%s.yaml' % MODEL] + args), sentence)
        for index, (args, sentence) in enumerate(INVALID_STARTUPS)]
    for process, sentence in invalid:
        assert process.wait(STARTUP_SEC) == 1, process.log
        assert sentence in process.log
        # The sentence stands alone: no traceback, no rcutils error block, no warning.
        for noise in ('Traceback', 'error state', 'Warning'):
            assert noise not in process.log, process.log


# Acceptance 4: running modes under load.

def test_live_stream_keeps_latency_bounded_and_counts_drops(env, probe, tmp_path_factory,
                                                            megamind_frames):
    # A reliable input, so that the frames reach the node faster than it segments them (a
    # best-effort one loses most of them inside DDS, and the node would keep up), and deep
    # output histories, so that this busy process loses no mask.
    process = start(env, tmp_path_factory, 'live_node', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/live', '-r', '__ns:=/b',
        '-p', 'qos_overrides./cam/live.subscription.reliability:=reliable',
        '-p', 'qos_overrides./b/category_mask.publisher.depth:=100',
        '-p', 'qos_overrides./b/category_mask.publisher.durability:=transient_local',
        '-p', 'qos_overrides./b/confidence_masks/selfie.publisher.depth:=100'])
    node = NodeUnderTest(probe, process, '/b', '/cam/live', input_qos=QoSProfile(
        depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
    outputs = ['category_mask', 'confidence_masks/selfie']
    for name in outputs:
        probe.subscribe(Image, node.topic(name))
    node.wait_connected(outputs)
    frames = [image_msg(frame, 'rgb8', 'live', 0.0) for frame in megamind_frames]
    start_time = time.time()
    while time.time() - start_time < 3.0:  # ~400 Hz of 720x528 frames: faster than inference
        msg = frames[node.sent % len(frames)]
        msg.header.stamp = stamp(time.time())
        node.publish(msg)
        time.sleep(0.002)
    probe.wait_for(node.topic('category_mask'), timeout=5.0)
    # Every processed frame's mask arrives (this process may still be taking them).
    node.diagnostics(lambda v: int(v['frames processed']) == len(
        probe.messages(node.topic('category_mask'))))
    masks = probe.messages(node.topic('category_mask'))
    latencies = sorted(probe.arrival[id(m)] - stamp_seconds(m.header.stamp) for m in masks)
    assert len(masks) >= 20, 'only %d masks for %d frames' % (len(masks), node.sent)
    assert latencies[int(0.9 * len(latencies))] < 0.25, latencies
    # No backlog builds up: the last frames come out as fast as the first ones. A backlog
    # delays every one of them; the median ignores the one frame whose last fragment DDS
    # repaired a heartbeat later (seen at 2.3 s on a loaded machine).
    late = sorted(probe.arrival[id(m)] - stamp_seconds(m.header.stamp) for m in masks[-10:])
    assert late[len(late) // 2] < 0.3, late
    # Every received frame is processed or dropped, once none is in flight any more (a frame
    # whose last fragment DDS repairs arrives up to a heartbeat, seconds, later).
    values = node.diagnostics(lambda v: int(v['frames processed']) + int(
        v['frames dropped']) + int(v['frames skipped (no subscribers)']) == int(
        v['frames received']))
    received, dropped = int(values['frames received']), int(values['frames dropped'])
    assert dropped > 0 and received <= node.sent
    assert values['running mode'] == 'LIVE_STREAM'
    # Each output keeps its own QoS: the category mask's override changes only its topic.
    durability = {name: [info.qos_profile.durability.name for info in
                         probe.node.get_publishers_info_by_topic(node.topic(name))]
                  for name in outputs + ['overlay']}
    assert durability == {'category_mask': ['TRANSIENT_LOCAL'],
                          'confidence_masks/selfie': ['VOLATILE'], 'overlay': ['VOLATILE']}
    node.stop()


def test_video_processes_every_frame_and_recovers_from_a_backwards_time_jump(
        env, probe, tmp_path_factory, small_frames):
    process = start(env, tmp_path_factory, 'video_node', [
        '--params-file', 'config/selfie_segmentation_landscape.yaml', '-r', 'image:=/cam/video',
        '-r', '__ns:=/c', '-p', 'running_mode:=VIDEO',
        '-p', 'qos_overrides./cam/video.subscription.reliability:=reliable'])
    node = NodeUnderTest(probe, process, '/c', '/cam/video')
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])
    warm_up = node.warm_up(small_frames[0], ['category_mask'], first_second=4000.0)
    # 40 frames at 20 Hz, then the bag loops: time goes back 100 s, 20 more frames.
    stamps = [5000.0 + 0.05 * i for i in range(40)] + [4900.0 + 0.05 * i for i in range(20)]
    for index, seconds in enumerate(stamps):
        node.publish(image_msg(small_frames[index % len(small_frames)], 'bgr8', 'video',
                               seconds))
        time.sleep(0.05)

    def video(mask: Image) -> bool:
        return mask.header.frame_id == 'video'
    try:
        masks = probe.wait_for(node.topic('category_mask'), video, count=len(stamps),
                               timeout=10.0)
    except AssertionError as error:
        raise AssertionError('%s\n%s\n%s' % (error, node.diagnostics(), process.log)) from None
    assert [round(stamp_seconds(m.header.stamp), 3) for m in masks] == [
        round(s, 3) for s in stamps]
    assert process.log.count('Time went backwards') == 1
    # Warm-up frames sent before the node saw the subscriber are skipped, not lost.
    values = node.diagnostics(lambda v: int(v['frames processed']) + int(
        v['frames skipped (no subscribers)']) == warm_up + len(stamps))
    assert values['frames dropped'] == '0' and values['frames rejected'] == '0'
    assert values['time jumps (segmenter restarted)'] == '1'
    assert values['running mode'] == 'VIDEO'
    assert values['model'] == 'selfie_segmentation_landscape'
    node.stop()


def test_video_queue_overflow_drops_the_oldest_frames_counts_and_warns(
        env, probe, tmp_path_factory, megamind_frames):
    process = start(env, tmp_path_factory, 'overflow_node', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/burst',
        '-r', '__ns:=/q', '-p', 'running_mode:=VIDEO', '-p', 'queue_size:=2',
        '-p', 'qos_overrides./cam/burst.subscription.reliability:=reliable',
        '-p', 'qos_overrides./cam/burst.subscription.depth:=100'])
    node = NodeUnderTest(probe, process, '/q', '/cam/burst')
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])
    warm_up = node.warm_up(megamind_frames[0], ['category_mask'], first_second=10.0)
    # A loaded machine may drop warm-up frames too (the first inference is slow): count the
    # burst's drops and warnings from here on.
    settled = node.diagnostics(lambda v: int(v['frames processed']) + int(
        v['frames dropped']) + int(v['frames skipped (no subscribers)']) == warm_up)
    log_before_burst = len(process.log)
    burst = [image_msg(megamind_frames[index % len(megamind_frames)], 'rgb8', 'burst',
                       100.0 + index) for index in range(40)]
    for msg in burst:  # far faster than the node segments 720x528 frames
        node.publish(msg)
    last = probe.wait_for(node.topic('category_mask'), lambda m: stamp_seconds(
        m.header.stamp) == 139.0, timeout=20.0)
    assert last, 'the newest frame of the burst must be segmented'
    values = node.diagnostics(lambda v: int(v['frames received']) == warm_up + len(burst) and
                              int(v['frames processed']) + int(v['frames dropped']) +
                              int(v['frames skipped (no subscribers)']) == warm_up + len(burst))
    dropped = int(values['frames dropped']) - int(settled['frames dropped'])
    assert dropped > 0
    masks = probe.messages(node.topic('category_mask'), lambda m: m.header.frame_id == 'burst')
    assert len(masks) == len(burst) - dropped
    assert [stamp_seconds(m.header.stamp) for m in masks] == sorted(
        stamp_seconds(m.header.stamp) for m in masks)
    burst_log = process.log[log_before_burst:]
    assert burst_log.count('Input queue full (queue_size 2)') <= 1, burst_log
    assert 'Input queue full (queue_size 2)' in process.log, process.log
    node.stop()


@pytest.mark.parametrize('delay', [0.2, 0.5, 0.8, 1.2])
def test_a_signal_during_start_up_is_a_clean_stop(env, tmp_path_factory, delay):
    """
    SIGTERM while Python imports, the model loads or topics are created: a quiet stop.

    Before rclpy installs its handler the default action ends the process (-SIGTERM), as for
    any ROS 2 node; after it, the node exits with 0.
    """
    process = start(env, tmp_path_factory, 'early_stop', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', '__ns:=/early'])
    time.sleep(delay)
    assert process.stop(signal.SIGTERM) in (0, -signal.SIGTERM), process.log
    assert 'Traceback' not in process.log and 'Error' not in process.log, process.log


# Pieces of the node that need no ROS graph.

def test_diagnostics_warn_about_the_last_seconds_only():
    from diagnostic_msgs.msg import DiagnosticStatus
    from image_segmenter_ros.node.image_segmenter_node import diagnostic_status
    zero = {'received': 0, 'processed': 0, 'dropped': 0, 'rejected': 0, 'failed': 0}

    def status(now, earlier, seconds=5, drops_matter=True):
        return diagnostic_status(dict(zero, **now), dict(zero, **earlier), seconds,
                                 drops_matter, '/cam')

    assert status({}, {}, seconds=2) == (DiagnosticStatus.OK, 'No frames received yet on /cam')
    # A few seconds without any frame: the topic and the publishers seen are named.
    assert status({}, {}) == (DiagnosticStatus.WARN, 'No frames received on /cam for 5 s; '
                              'publishers seen: 0 (is the image topic remapped to the camera?)')
    assert status({'received': 9, 'rejected': 1}, {'received': 2}) == (
        DiagnosticStatus.WARN, 'Rejected frames in the last 5 s: 1')
    # One bad frame long ago, frames flowing now: OK again.
    assert status({'received': 9, 'rejected': 1}, {'received': 5, 'rejected': 1}) == (
        DiagnosticStatus.OK, 'Segmenting')
    assert status({'received': 9, 'dropped': 3}, {'received': 5}, drops_matter=False)[0] == \
        DiagnosticStatus.OK
    assert status({'received': 9, 'dropped': 3}, {'received': 5})[0] == DiagnosticStatus.WARN
    assert status({'received': 9}, {'received': 9}) == (
        DiagnosticStatus.WARN, 'No frames on /cam for 5 s; publishers seen: 0 (is the image '
        'topic remapped to the camera?)')
    assert status({'received': 9}, {'received': 9}, seconds=2)[0] == DiagnosticStatus.OK
    # A bag replayed without sim time: the latency is the stamps' age, and the status says so.
    flowing = dict(zero, received=9), dict(zero, received=5), 5, True, '/cam', 1
    level, message = diagnostic_status(*flowing, latency_p50_ms=105189e3)
    assert level == DiagnosticStatus.WARN and message.startswith(
        "Stamps on /cam are 105189 s behind this node's clock") and 'use_sim_time:=true' in message
    assert diagnostic_status(*flowing, latency_p50_ms=25.0) == (DiagnosticStatus.OK, 'Segmenting')


def test_qos_override_refusals_name_the_parameter_and_the_allowed_values():
    from image_segmenter_ros.node.parameters import qos_override_problem
    assert qos_override_problem(
        '/a/overlay', 'publisher', 'Unexpected QoS override for policy `history`: `all`',
        overridden=False) == (
        "Parameter 'qos_overrides./a/overlay.publisher.history' must be one of keep_last, "
        'keep_all, system_default, got all.')
    assert qos_override_problem('/cam', 'subscription', 'Failed to create subscription',
                                overridden=False) is None
    unknown = qos_override_problem('/cam', 'subscription', 'Failed to create subscription',
                                   overridden=True)
    assert unknown.startswith("Parameters 'qos_overrides./cam.subscription.*' were refused "
                              '(Failed to create subscription): reliability must be one of')


def test_labels_name_confidence_topics_only_when_they_are_published():
    from image_segmenter_ros.node.output_messages import labels_yaml
    for published, topics in ((True, ['confidence_masks/background', 'confidence_masks/hair']),
                              (False, [None, None])):
        text = labels_yaml('hair', 'en', ['background', 'hair'], ['background', 'hair'],
                           published)
        assert [c['confidence_topic'] for c in yaml.safe_load(text)['classes']] == topics

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
The bag tools on real bags of real video frames, and the live path over real DDS.

make_sample_bag, segment_bag and render run in this process; the node, replay_bag and record
run as their installed executables, over Fast DDS on loopback in this module's domain.
"""

from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from conftest import VIDEO_DIR
import cv2
from diagnostic_msgs.msg import DiagnosticArray
from image_segmenter_ros import ImageSegmenter
from image_segmenter_ros.node import input_images as ic
from image_segmenter_ros.node.overlay import render_overlay
from image_segmenter_ros.tools import render
from image_segmenter_ros.tools.bag_io import BagReader, BagWriter
from image_segmenter_ros.tools.make_sample_bag import make_sample_bag
from image_segmenter_ros.tools.render import main as render_main
from image_segmenter_ros.tools.replay_bag import _wait_until
from image_segmenter_ros.tools.segment_bag import main as segment_bag_main
import numpy as np
import pytest
from ros_harness import NodeProcess, PACKAGE_ROOT, Probe, track, wait_until
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
import yaml

VIDEO = VIDEO_DIR / 'Megamind.avi'
FRAMES = 8
RATE = 20.0
START = 1000.0
CAMERA = '/camera/image_raw'
CONFIG = PACKAGE_ROOT / 'config' / 'selfie_segmentation.yaml'
MASKS = ['/camera/category_mask', '/camera/confidence_masks/background',
         '/camera/confidence_masks/selfie']
BIN = Path(sys.executable).parent


def header_key(msg: Any) -> Tuple[int, int, str]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id


def read_bag(path: Path, topics: Optional[List[str]] = None) -> Dict[str, List[Any]]:
    """Return the messages of a bag (of ``topics``), decoded with rclpy, in stored order."""
    with BagReader(path) as reader:
        topics = topics or list(reader.topics)
        messages: Dict[str, List[Any]] = {topic: [] for topic in topics}
        for message in reader.messages(topics):
            messages[message.topic].append(reader.decode(message))
    return messages


def pixels(msg: Image) -> np.ndarray:
    dtype = np.float32 if msg.encoding == '32FC1' else np.uint8
    return np.frombuffer(msg.data, dtype).reshape(msg.height, msg.width)


@pytest.fixture(scope='module')
def sample_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'megamind'
    make_sample_bag(VIDEO, path, frames=FRAMES, rate=RATE, start_time=START, topic=CAMERA)
    return path


@pytest.fixture(scope='module')
def segmented(sample_bag, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'segmented'
    assert segment_bag_main([str(sample_bag), str(path), '--params-file', str(CONFIG)]) == 0
    return path


# Acceptance 1: storages, segment_bag against the engine, compressed input.

@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'mono8', 'jpeg'])
def test_sample_bags_round_trip_in_both_storages(tmp_path, storage, encoding):
    compressed = 'jpeg' if encoding == 'jpeg' else None
    bag = tmp_path / 'bag'
    assert make_sample_bag(VIDEO, bag, encoding='bgr8' if compressed else encoding, rate=RATE,
                           frame_id='cam_optical', storage=storage, compressed=compressed,
                           frames=3, start_time=START) == 3
    suffix = {'mcap': '.mcap', 'sqlite3': '.db3'}[storage]
    assert (bag / ('bag' + suffix)).exists() and not list(tmp_path.glob('.*partial'))
    capture = cv2.VideoCapture(str(VIDEO))
    for reference in (bag, bag / ('bag' + suffix)):  # the folder or the storage file
        with BagReader(reference) as reader:
            assert reader.storage == storage
            topic = '/camera/image_raw/compressed' if compressed else '/camera/image_raw'
            assert reader.image_topics() == [topic]
            messages = [(m, reader.decode(m)) for m in reader.messages([topic])]
    assert len(messages) == 3
    for index, (stored, msg) in enumerate(messages):
        assert isinstance(msg, CompressedImage if compressed else Image)
        assert msg.header.frame_id == 'cam_optical'
        stamp_ns = int(START * 1e9) + int(round(index * 1e9 / RATE))
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == divmod(stamp_ns, 10**9)
        assert stored.timestamp_ns == stamp_ns
        ok, bgr = capture.read()
        assert ok
        if compressed:
            assert msg.format == 'jpeg'
            assert np.abs(ic.compressed_to_array(msg).astype(int) -
                          bgr[:, :, ::-1]).mean() < 3.0
        else:
            assert msg.encoding == encoding
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if encoding == 'mono8' else rgb
            np.testing.assert_array_equal(ic.image_to_array(msg), expected)


def test_mapped_mcap_reading_gives_what_rosbags_reads(sample_bag, tmp_path):
    """Small messages chunked together and frames in chunks of their own, in time order."""
    from rosbags.rosbag2 import Reader
    bag = tmp_path / 'mixed'
    frames = read_bag(sample_bag)[CAMERA]
    with BagWriter(bag) as writer:
        writer.add_topic(CAMERA, 'sensor_msgs/msg/Image')
        writer.add_topic('/chatter', 'std_msgs/msg/String')
        for index, frame in enumerate(frames):
            writer.write(CAMERA, 10 * index + 5, frame)
            for tick in range(3):
                writer.write('/chatter', 10 * index + 3 * tick, String(data=str(tick)))
    with Reader(bag) as plain:
        expected = [(c.topic, t, raw) for c, t, raw in plain.messages()]
    with BagReader(bag) as reader:
        for views in (False, True):
            got = [(m.topic, m.timestamp_ns, m.raw) for m in reader.messages(
                [CAMERA, '/chatter'], views=views)]
            assert got == expected
            assert all(isinstance(raw, memoryview if views else bytes) for _, _, raw in got)
        assert [m.timestamp_ns for m in reader.messages([CAMERA], start_ns=25)] == [
            10 * index + 5 for index in range(2, len(frames))]


def assert_masks_match_engine(bag: Path, inputs: List[Any], engine: ImageSegmenter) -> None:
    """One mask per frame and output, the frame's header, the engine's values."""
    messages = read_bag(bag, MASKS + ['/camera/labels'])
    for topic in MASKS:
        assert [header_key(m) for m in messages[topic]] == [header_key(m) for m in inputs]
        assert all(m.header == f.header for m, f in zip(messages[topic], inputs))
    for index, frame in enumerate(inputs):
        decoded = (ic.compressed_to_array(frame) if isinstance(frame, CompressedImage)
                   else ic.image_to_array(frame))
        expected = engine.segment(decoded)
        category = messages[MASKS[0]][index]
        assert category.encoding == 'mono8'
        np.testing.assert_array_equal(pixels(category), expected.category_mask)
        for mask_index, topic in enumerate(MASKS[1:]):
            confidence = messages[topic][index]
            assert confidence.encoding == '32FC1'
            np.testing.assert_array_equal(pixels(confidence),
                                          expected.confidence_masks[mask_index])
    labels = yaml.safe_load(messages['/camera/labels'][0].data)
    assert [c['confidence_topic'] for c in labels['classes']] == [
        'confidence_masks/background', 'confidence_masks/selfie']


def test_segment_bag_gives_one_mask_per_frame_with_its_header_and_the_engine_values(
        sample_bag, segmented, engine):
    inputs = read_bag(sample_bag)[CAMERA]
    assert len(inputs) == FRAMES
    assert_masks_match_engine(segmented, inputs, engine)
    with BagReader(sample_bag) as source, BagReader(segmented) as result:
        assert result.topics == {CAMERA: 'sensor_msgs/msg/Image',
                                 '/camera/labels': 'std_msgs/msg/String',
                                 **dict.fromkeys(MASKS, 'sensor_msgs/msg/Image')}
        # The camera stream is copied byte for byte, at its receive times.
        assert [(m.timestamp_ns, m.raw) for m in source.messages([CAMERA])] == [
            (m.timestamp_ns, m.raw) for m in result.messages([CAMERA])]


def test_segment_bag_writes_the_same_messages_to_sqlite3(sample_bag, segmented, tmp_path):
    out = tmp_path / 'sqlite'
    assert segment_bag_main([str(sample_bag), str(out), '--params-file', str(CONFIG),
                             '--storage', 'sqlite3']) == 0
    with BagReader(out) as reader:
        assert reader.storage == 'sqlite3'
    assert read_bag(out) == read_bag(segmented)


def stored(path: Path) -> List[Tuple[str, int, bytes]]:
    """Return every message of a bag as stored: topic, receive time, CDR bytes."""
    with BagReader(path) as reader:
        return [(m.topic, m.timestamp_ns, bytes(m.raw)) for m in reader.messages(
            list(reader.topics))]


@pytest.mark.parametrize('jobs', ['1', '3'])
def test_segment_bag_writes_the_same_bag_whatever_the_number_of_jobs(
        sample_bag, segmented, tmp_path, jobs):
    # One engine with the file's 2 inference threads, or three frames at once on engines of
    # one thread each, give the same messages in the same order as the default.
    out = tmp_path / 'out'
    assert segment_bag_main([str(sample_bag), str(out), '--params-file', str(CONFIG),
                             '--jobs', jobs]) == 0
    assert stored(out) == stored(segmented)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_segment_bag_reads_compressed_frames_from_either_storage(tmp_path, engine, storage):
    bag, out = tmp_path / 'compressed', tmp_path / 'out'
    make_sample_bag(VIDEO, bag, storage=storage, compressed='jpeg', frames=3, rate=RATE,
                    start_time=START)
    result = subprocess.run([str(BIN / 'segment_bag'), str(bag), str(out), '--model',
                             'selfie_segmentation', '--storage', storage],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'segmented 3 frames' in result.stdout
    assert '3/3' in result.stderr and 'frame/s' in result.stderr  # the progress bar
    # image_transport's layout: /camera/image_raw/compressed belongs to the /camera camera.
    assert_masks_match_engine(out, read_bag(bag)['/camera/image_raw/compressed'], engine)


def test_params_file_options_and_namespace_change_the_outputs_like_the_node(
        sample_bag, tmp_path, engine):
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'model': 'selfie_segmentation', 'output_confidence_masks': False,
        'rotation_degrees': 180, 'overlay_alpha': 0.25}}}))
    out = tmp_path / 'out'
    assert segment_bag_main([str(sample_bag), str(out), '--params-file', str(params),
                             '--output-namespace', '/front', '--overlay',
                             '--topics', CAMERA]) == 0
    messages = read_bag(out)
    assert sorted(messages) == [CAMERA, '/front/category_mask', '/front/labels',
                                '/front/overlay']
    frame = messages[CAMERA][1]
    decoded = ic.image_to_array(frame)
    expected = engine.segment(decoded, 180).category_mask
    np.testing.assert_array_equal(pixels(messages['/front/category_mask'][1]), expected)
    picture, encoding = render_overlay(decoded, expected, 0.25, 'bgr8')
    overlay = messages['/front/overlay'][1]
    assert overlay.encoding == encoding == 'bgr8' and overlay.header == frame.header
    np.testing.assert_array_equal(
        np.frombuffer(overlay.data, np.uint8).reshape(picture.shape), picture)


# Same parameter file, same verdict: the node and segment_bag refuse a value with one sentence.

INVALID_PARAMETERS = [
    {'num_threads': 0}, {'num_threads': 2.0}, {'overlay_alpha': 1.5}, {'overlay_alpha': 2},
    {'rotation_degrees': 45}, {'running_mode': 'FAST'}, {'input_transport': 3},
    {'model_selection': True}, {'output_category_mask': 'yes'},
    {'output_category_mask': False, 'output_confidence_masks': False},
    {'model': '/nonexistent/model.tflite'},
]


def test_a_whole_number_is_a_floating_point_parameter_value(tmp_path):
    """overlay_alpha: 1 in a params file is 1.0 to segment_bag, as to the node."""
    from image_segmenter_ros.node.parameters import load_parameters
    path = tmp_path / 'whole.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'overlay_alpha': 1}}}))
    value = load_parameters(path)['overlay_alpha']
    assert value == 1.0 and isinstance(value, float)


def test_invalid_parameter_files_are_refused_with_the_node_sentence(
        sample_bag, tmp_path, env, capsys):
    files, nodes = [], []
    for index, values in enumerate(INVALID_PARAMETERS):
        files.append(tmp_path / ('invalid_%d.yaml' % index))
        files[-1].write_text(yaml.safe_dump({'/**': {'ros__parameters': values}}))
        nodes.append(NodeProcess(['--params-file', str(files[-1]), '-r', '__ns:=/invalid%d'
                                  % index], env, tmp_path / ('node_%d.log' % index)))
    for path, node in zip(files, nodes):
        assert segment_bag_main([str(sample_bag), str(tmp_path / 'out'), '--params-file',
                                 str(path)]) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith('segment_bag: error: ')
        sentence = error[len('segment_bag: error: '):]
        assert node.wait(30) == 1, node.log
        assert sentence in node.log, (sentence, node.log)
        assert not (tmp_path / 'out').exists()


# Bad input: one clear sentence naming the bag (topic, message), never a partial bag.

def run_segment_bag(capsys, *args: str) -> Tuple[int, str]:
    code = segment_bag_main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_missing_corrupt_and_imageless_bags_and_missing_topics(sample_bag, tmp_path, capsys):
    out = tmp_path / 'out'
    code, error = run_segment_bag(capsys, tmp_path / 'nope', out)
    assert code == 1 and 'Cannot open bag %s' % (tmp_path / 'nope') in error
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(sample_bag, corrupt)
    (corrupt / 'megamind.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\x00' * 100)
    code, error = run_segment_bag(capsys, corrupt, out)
    assert code == 1 and str(corrupt) in error and 'Traceback' not in error
    (corrupt / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    code, error = run_segment_bag(capsys, corrupt, out)
    assert code == 1 and 'Cannot open bag %s' % corrupt in error
    code, error = run_segment_bag(capsys, sample_bag, out, '--topics', '/front/image_raw')
    assert code == 1 and 'has no topic /front/image_raw' in error and CAMERA in error
    strings = tmp_path / 'strings'
    with BagWriter(strings) as writer:
        writer.add_topic('/chatter', 'std_msgs/msg/String')
        writer.write('/chatter', 1, String(data='hello'))
    code, error = run_segment_bag(capsys, strings, out)
    assert code == 1 and 'has no image topics' in error and '/chatter' in error
    code, error = run_segment_bag(capsys, strings, out, '--topics', '/chatter')
    assert code == 1 and 'not an image' in error
    code, error = run_segment_bag(capsys, sample_bag, out, '--jobs', '0')
    assert code == 1 and '--jobs must be at least 1, got 0.' in error
    assert not out.exists() and not list(tmp_path.glob('.*partial'))


def test_undecodable_frames_are_counted_and_skipped(sample_bag, tmp_path, capsys, engine):
    source = read_bag(sample_bag)[CAMERA][:4]
    short = Image(header=source[1].header, height=source[1].height, width=source[1].width,
                  encoding='bgr8', step=source[1].step, data=source[1].data[:1000])
    bad = tmp_path / 'bad'
    with BagWriter(bad) as writer:
        writer.add_topic(CAMERA, 'sensor_msgs/msg/Image')
        writer.write(CAMERA, 1, source[0])
        writer.write(CAMERA, 2, short)  # message 1: too little data
        writer.write_raw(CAMERA, 3, b'\x00\x01\x00\x00not a message')  # message 2: not CDR
        writer.write(CAMERA, 4, source[3])
    out = tmp_path / 'out'
    code, error = run_segment_bag(capsys, bad, out, '--model', 'selfie_segmentation')
    assert code == 0
    assert 'Bag %s, topic %s, message 1: Image data has' % (bad, CAMERA) in error
    assert 'Bag %s, topic %s, message 2: failed to deserialize' % (bad, CAMERA) in error
    with BagReader(out) as reader:
        assert reader.count([CAMERA]) == 4  # the input is copied as it was
    assert_masks_match_engine(out, [source[0], source[3]], engine)


def test_existing_output_needs_force(sample_bag, segmented, tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep').write_text('mine')
    code, error = run_segment_bag(capsys, sample_bag, out, '--model', 'selfie_segmentation')
    assert code == 1 and 'exists already; pass --force' in error
    assert (out / 'keep').read_text() == 'mine'
    code, _ = run_segment_bag(capsys, sample_bag, out, '--model', 'selfie_segmentation',
                              '--force', '--output-namespace', '/camera')
    assert code == 0 and not (out / 'keep').exists()
    assert read_bag(out)[MASKS[0]] == read_bag(segmented)[MASKS[0]]


# Acceptance 2: the live node, replayed and recorded, equals segment_bag frame for frame.

@pytest.fixture(scope='module')
def video_node(env, tmp_path_factory):
    node = NodeProcess(['--params-file', str(CONFIG), '-r', 'image:=' + CAMERA, '-r',
                        '__ns:=/camera', '-p', 'running_mode:=VIDEO', '-p', 'queue_size:=100',
                        '-p', 'qos_overrides.%s.subscription.reliability:=reliable' % CAMERA,
                        '-p', 'qos_overrides.%s.subscription.depth:=100' % CAMERA] + [
                        arg for topic in MASKS for arg in (
                            '-p', 'qos_overrides.%s.publisher.depth:=100' % topic)],
                       env, tmp_path_factory.mktemp('logs') / 'video_node.log')
    wait_until(lambda: 'Segmenting' in node.log, 30.0, 'the node to start')
    yield node
    assert node.stop() == 0, node.log


def start(env: Dict[str, str], tool: str, *args: Any) -> subprocess.Popen:
    return track(subprocess.Popen([str(BIN / tool)] + [str(a) for a in args], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


def finish(process: subprocess.Popen, timeout: float = 60.0) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def wait_for_recorder(env: Dict[str, str], topics: List[str]) -> None:
    """
    Wait until the node sees the recorder's subscriptions to its outputs (its diagnostics).

    The node segments a frame only for outputs with subscribers: a frame replayed before
    it sees the recorder would be skipped, as on a robot.
    """
    relative = [topic[len('/camera/'):] for topic in topics]
    probe = Probe(int(env['ROS_DOMAIN_ID']))

    def node_sees_them() -> bool:
        for msg in probe.messages('/diagnostics'):
            for status in msg.status:
                seen = {kv.key: kv.value for kv in status.values}.get(
                    'outputs with subscribers', '').split(', ')
                if status.name.startswith('/camera/') and set(relative) <= set(seen):
                    return True
        return False
    try:
        probe.subscribe(DiagnosticArray, '/diagnostics')
        wait_until(node_sees_them, 30.0, 'the node to see subscribers on %s' % ', '.join(topics))
    finally:
        probe.close()


def test_live_node_recording_equals_segment_bag(video_node, env, sample_bag, segmented,
                                                tmp_path):
    recording = tmp_path / 'recording'
    recorder = start(env, 'record', recording, '--topics', CAMERA, *MASKS, '/camera/labels',
                     '--count', FRAMES * 4 + 1, '--duration', 60)
    wait_for_recorder(env, MASKS)
    finish(start(env, 'replay_bag', sample_bag, '--wait-for-subscribers', 30,
                 '--subscribers', 2))
    finish(recorder)
    live, offline = read_bag(recording), read_bag(segmented)
    for topic in MASKS:
        assert len(live[topic]) == FRAMES
        assert live[topic] == offline[topic], topic  # header, encoding, size and bytes
    assert live['/camera/labels'] == offline['/camera/labels']
    # The live recording renders like any other bag: labels from its labels topic.
    picture = tmp_path / 'live.png'
    assert render_main([str(recording), str(picture), '--tiles', '4']) == 0
    assert cv2.imread(str(picture)).shape[1] == 4 * 320


def test_looping_replay_goes_back_in_time_and_the_node_keeps_producing(
        video_node, env, sample_bag, tmp_path):
    probe = Probe(int(env['ROS_DOMAIN_ID']))
    try:
        probe.subscribe(Clock, '/clock')
        recording = tmp_path / 'loop'
        recorder = start(env, 'record', recording, '--topics', MASKS[0])
        wait_for_recorder(env, MASKS[:1])
        replay = start(env, 'replay_bag', sample_bag, '--loop', '--clock', '--rate', 2,
                       '--wait-for-subscribers', 30)
        # The first replay of this bag already ran, so the loop starts back in time too.
        jumps = video_node.log.count('Time went backwards')

        def clock() -> List[float]:
            return [m.clock.sec + m.clock.nanosec * 1e-9 for m in probe.messages('/clock')]
        wait_until(lambda: video_node.log.count('Time went backwards') >= jumps + 3 and any(
            b < a for a, b in zip(clock(), clock()[1:])), 30.0,
            'two wraps of the loop, seen on /clock:\n%s' % video_node.log)
        replay.send_signal(signal.SIGINT)
        replay.communicate(timeout=30)
        time.sleep(0.5)  # the masks of the last frames are on their way
        recorder.send_signal(signal.SIGTERM)  # record finishes its bag on SIGTERM
        finish(recorder)
        clock_seconds = clock()
    finally:
        probe.close()
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
              for m in read_bag(recording)[MASKS[0]]]
    wraps = sum(1 for a, b in zip(stamps, stamps[1:]) if b < a)
    assert wraps >= 2, stamps
    last_wrap = max(i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1])
    assert len(stamps) - last_wrap >= 1  # masks after the wrap
    # /clock gives bag time, going back at each wrap like the stamps.
    assert START - 0.1 <= min(clock_seconds) and max(clock_seconds) <= START + FRAMES / RATE + 0.1


def test_replay_clock_waits_for_a_late_message_instead_of_running_ahead():
    published = []  # a stand-in for the /clock publisher, to isolate the timing rule
    publisher = type('ClockPublisher', (), {'publish': lambda self, msg: published.append(msg)})()
    now = time.monotonic()
    # The message was due 1 s ago (publishing ran late), 2 s after the pass began, at rate 1.
    _wait_until(now - 1.0, publisher, first_ns=10**12, start=0.0, rate=1.0, wall_start=now - 3.0)
    assert [(m.clock.sec, m.clock.nanosec) for m in published] == [(1002, 0)]


def test_replay_from_a_start_offset_skips_the_first_seconds_of_the_bag(env, tmp_path):
    topic = '/start_offset/image_raw'  # no other subscriber in this module
    bag = tmp_path / 'bag'
    make_sample_bag(VIDEO, bag, frames=FRAMES, rate=RATE, start_time=START, topic=topic)
    skipped = 3
    probe = Probe(int(env['ROS_DOMAIN_ID']))
    try:
        probe.subscribe(Image, topic)
        out = finish(start(env, 'replay_bag', bag, '--start', (skipped - 0.5) / RATE,
                           '--wait-for-subscribers', 30))
        probe.wait_for(topic, count=FRAMES - skipped)
        time.sleep(0.2)  # nothing else arrives
        received = probe.messages(topic)
    finally:
        probe.close()
    assert 'published %d messages' % (FRAMES - skipped) in out
    # Frames 0, 1 and 2, stamped in the first 2.5 / RATE seconds of the bag, are left out.
    assert [header_key(m) for m in received] == [
        header_key(m) for m in read_bag(bag)[topic][skipped:]]
    assert min(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
               for m in received) >= START + skipped / RATE - 1e-6


def test_replay_waits_for_a_subscriber_by_default(env, tmp_path):
    """As the README's example runs it: a node that subscribes after the start gets every frame."""
    topic = '/late_subscriber/image_raw'  # no other subscriber in this module
    bag = tmp_path / 'bag'
    make_sample_bag(VIDEO, bag, frames=FRAMES, rate=RATE, start_time=START, topic=topic)
    replay = start(env, 'replay_bag', bag)
    probe = Probe(int(env['ROS_DOMAIN_ID']))
    try:
        time.sleep(1.0)  # the bag is open and its publisher is waiting
        probe.subscribe(Image, topic)
        out = finish(replay)
        probe.wait_for(topic, count=FRAMES)
    finally:
        probe.close()
    assert 'published %d messages' % FRAMES in out


def test_replay_refuses_a_start_past_the_end_instead_of_looping_on_nothing(
        env, sample_bag):
    process = start(env, 'replay_bag', sample_bag, '--loop', '--start', 3600,
                    '--wait-for-subscribers', 0)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().endswith('has no messages on %s after --start 3600 s.' % CAMERA), err


def test_render_writes_a_contact_sheet_and_an_mp4(segmented, tmp_path, capsys):
    picture, video = tmp_path / 'sheet.png', tmp_path / 'sheet.mp4'
    assert render_main([str(segmented), str(picture), '--mp4', str(video)]) == 0
    sheet = cv2.imread(str(picture))
    # Title, two rows of four tiles (overlay | confidence), legend.
    assert sheet.shape[1] == 4 * 320 and sheet.shape[0] > 2 * 235
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert abs(capture.get(cv2.CAP_PROP_FPS) - RATE) < 0.5
    assert render_main([str(tmp_path / 'missing'), str(picture)]) == 1
    assert 'Cannot open bag' in capsys.readouterr().err


def test_render_pairs_only_masked_frames_and_names_a_bad_model_in_one_sentence(
        segmented, tmp_path, capsys, monkeypatch):
    # As a LIVE_STREAM recording: every other frame has no mask, and no labels topic.
    thinned = tmp_path / 'thinned'
    with BagReader(segmented) as reader, BagWriter(thinned) as writer:
        topics = [t for t in reader.topics if t != '/camera/labels']
        for topic in topics:
            writer.add_topic(topic, reader.topics[topic], like=reader.connections[topic][0])
        masks = 0
        for message in reader.messages(topics):
            if message.topic != CAMERA:
                index = masks // len(MASKS)
                masks += 1
                if index % 2:
                    continue
            writer.write_raw(message.topic, message.timestamp_ns, message.raw)
    picture, video = tmp_path / 'sheet.png', tmp_path / 'sheet.mp4'
    # Hold at most one unmasked frame, so that frames are forgotten along the way.
    monkeypatch.setattr(render, 'PENDING_FRAMES', 1)
    assert render_main([str(thinned), str(picture), '--mp4', str(video)]) == 0
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == (FRAMES + 1) // 2
    assert render_main([str(thinned), str(picture), '--model', 'no_such_model']) == 1
    error = capsys.readouterr().err
    assert "render: error: Parameter 'model' ('no_such_model')" in error
    assert 'Traceback' not in error


def test_render_draws_a_bag_segmented_without_confidence_masks(sample_bag, tmp_path):
    params = tmp_path / 'category_only.yaml'
    params.write_text(CONFIG.read_text().replace('output_confidence_masks: true',
                                                 'output_confidence_masks: false'))
    assert 'output_confidence_masks: false' in params.read_text()
    out = tmp_path / 'category_only'
    assert segment_bag_main([str(sample_bag), str(out), '--params-file', str(params)]) == 0
    with BagReader(out) as reader:
        labels = yaml.safe_load(reader.decode(next(iter(reader.messages(
            ['/camera/labels'])))).data)
    assert [c['confidence_topic'] for c in labels['classes']] == [None, None]
    picture = tmp_path / 'sheet.png'
    assert render_main([str(out), str(picture)]) == 0
    assert cv2.imread(str(picture)) is not None

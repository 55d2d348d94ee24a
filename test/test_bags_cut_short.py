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
Bags cut short by a crash, a kill or a truncation: nothing complete is lost, nothing is half read.

record, replay_bag and segment_bag run as their installed executables and are killed with
SIGKILL (what a power cut leaves is what the page cache held: the same files); real bags of
real video frames are cut at random byte offsets; repaired bags are read back with the
``mcap`` package, independently of rosbags.
"""

import os
from pathlib import Path
import random
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Tuple

from conftest import VIDEO_DIR
import cv2
from image_segmenter_ros.tools.bag_io import BagError, BagReader, BagWriter, is_complete
from image_segmenter_ros.tools.cli import open_bag
from image_segmenter_ros.tools.make_sample_bag import frame_message, make_sample_bag
from image_segmenter_ros.tools.render import main as render_main
from image_segmenter_ros.tools.repair_bag import main as repair_bag_main
from image_segmenter_ros.tools.replay_bag import replay
from image_segmenter_ros.tools.segment_bag import main as segment_bag_main
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
import numpy as np
import pytest
import rclpy
from rclpy.serialization import deserialize_message
from ros_harness import Probe, RELIABLE, stamp, track, wait_until
from sensor_msgs.msg import Image
import yaml

VIDEO = VIDEO_DIR / 'Megamind.avi'
CAMERA = '/camera/image_raw'
BIN = Path(sys.executable).parent
Stored = Tuple[str, int, bytes]


def stored(bag: Path) -> List[Stored]:
    """Every readable message of a bag: topic, receive time, CDR bytes (in time order)."""
    with BagReader(bag) as reader:
        return [(m.topic, m.timestamp_ns, bytes(m.raw))
                for m in reader.messages(sorted(reader.topics))]


def start(env: Dict[str, str], tool: str, *args: Any) -> subprocess.Popen:
    return track(subprocess.Popen([str(BIN / tool)] + [str(a) for a in args], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


def categories_only(path: Path) -> Path:
    """Write a parameter file for category masks only: smaller bags, same code paths."""
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'model': 'selfie_segmentation', 'output_confidence_masks': False}}}))
    return path


# Bags truncated at random byte offsets: every tool reads every message that ends before the
# cut, reports the cut in one line, and goes on.

@pytest.fixture(scope='module')
def small_segmented(tmp_path_factory) -> Path:
    """Segment a bag of small real frames: chunked and directly written records alike."""
    folder = tmp_path_factory.mktemp('small')
    capture = cv2.VideoCapture(str(VIDEO))
    camera = folder / 'camera'
    with BagWriter(camera) as writer:
        writer.add_topic(CAMERA, 'sensor_msgs/msg/Image')
        for index in range(16):
            ok, bgr = capture.read()
            assert ok
            # 57.6 kB frames go into shared chunks, 76.8 kB confidence masks each in its own.
            msg = frame_message(cv2.resize(bgr, (160, 120), interpolation=cv2.INTER_AREA),
                                'bgr8', None)
            msg.header.stamp, msg.header.frame_id = stamp(100.0 + index / 24), 'camera'
            writer.write(CAMERA, (100 * 24 + index) * 10**9 // 24, msg)
    capture.release()
    segmented = folder / 'segmented'
    assert segment_bag_main([str(camera), str(segmented), '--model', 'selfie_segmentation']) == 0
    return segmented


def record_ends(data: bytes, messages: List[Stored]) -> List[int]:
    """Return where each message's record ends in an MCAP file (log and publish time, data)."""
    ends = []
    for _, timestamp, raw in messages:
        start = data.find(struct.pack('<QQ', timestamp, timestamp) + raw)
        assert start > 0
        ends.append(start + 16 + len(raw))
    return ends


def test_bags_truncated_at_random_offsets_are_read_up_to_the_cut_by_every_tool(
        small_segmented, tmp_path, capsys, env):
    originals = stored(small_segmented)
    data = (small_segmented / 'segmented.mcap').read_bytes()
    ends = record_ends(data, originals)
    masks = sorted({t for t, _, _ in originals if t.endswith('category_mask')})
    rng = random.Random(20)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    try:
        for attempt in range(50):
            cut = rng.randrange(17, len(data))  # after the MCAP header
            bag = tmp_path / ('cut%d' % attempt)
            bag.mkdir()
            (bag / 'segmented.mcap').write_bytes(data[:cut])
            if attempt % 2:  # a copied bag cut in half; else a bag never closed
                shutil.copy(small_segmented / 'metadata.yaml', bag)
            complete = [m for m, end in zip(originals, ends) if end <= cut]
            assert stored(bag) == complete, 'cut at byte %d' % cut  # bytes as written
            frames = sum(t == CAMERA for t, _, _ in complete)
            masked = sum(t in masks for t, _, _ in complete)
            tool = attempt % 3
            if tool == 0:
                out = tmp_path / ('out%d' % attempt)
                code = segment_bag_main([str(bag), str(out), '--topics', CAMERA,
                                         '--output-namespace', '/again', '--model',
                                         'selfie_segmentation'])
                err = capsys.readouterr().err
                if code == 0:
                    assert sum(t == '/again/category_mask' for t, _, _ in stored(out)) == frames
                else:  # cut before the camera's channel was declared
                    assert 'has no topic %s' % CAMERA in err and not frames
            elif tool == 1:
                code = render_main([str(bag), str(tmp_path / ('sheet%d.png' % attempt))])
                captured = capsys.readouterr()
                err = captured.err
                if code == 0:
                    assert 'render: %d masked frames' % masked in captured.out
                else:
                    assert 'render: error: Bag %s' % bag in err and not (frames and masked)
            else:
                with open_bag('replay_bag', bag) as reader:
                    err = capsys.readouterr().err
                    if CAMERA in reader.topics and frames:
                        assert replay(reader, [CAMERA], rate=1000.0, context=context) == frames
                    code = 0
            assert code in (0, 1) and 'Traceback' not in err
            assert 'Bag %s was cut short (' % bag in err, err
            assert '%d complete messages' % len(complete) in err, err
            shutil.rmtree(bag)
    finally:
        rclpy.try_shutdown(context=context)


def test_sqlite3_bags_with_a_journal_left_behind_are_rolled_back_read_and_repaired(
        small_segmented, tmp_path, capsys):
    """A transaction cut by a crash leaves its journal: the committed rows are all read."""
    bag = tmp_path / 'bag'
    with BagReader(small_segmented) as reader, BagWriter(bag, 'sqlite3') as writer:
        for topic, connections in reader.connections.items():
            writer.add_topic(topic, reader.topics[topic], like=connections[0])
    database = bag / 'bag.db3'
    (bag / 'metadata.yaml').unlink()
    originals = stored(small_segmented)
    connection = sqlite3.connect(str(database))
    topics = dict(connection.execute('SELECT name, id FROM topics'))
    rows = [(topics[t], stamp_ns, raw) for t, stamp_ns, raw in originals]
    connection.executemany('INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)',
                           rows[:20])
    connection.commit()
    connection.execute('PRAGMA cache_size = 1')  # the open transaction spills into the file
    connection.executemany('INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)',
                           rows[20:])
    # Copied while the transaction is open: the file and journal a crash would leave.
    copy = tmp_path / 'crashed'
    shutil.copytree(bag, copy)
    connection.close()
    assert (copy / 'bag.db3-journal').exists()
    with BagReader(copy) as reader:
        assert 'sqlite3 transaction was rolled back' in reader.cut_short
        assert '20 complete messages' in reader.cut_short
    assert stored(copy) == sorted(originals[:20], key=lambda m: m[1])
    assert repair_bag_main([str(copy)]) == 0 and is_complete(copy)
    assert repair_bag_main([str(copy)]) == 0
    assert 'bag %s is complete: nothing to repair' % copy in capsys.readouterr().out
    assert repair_bag_main([str(copy / 'crashed.db3')]) == 1
    assert 'is a single file: name an OUTPUT folder' in capsys.readouterr().err
    assert stored(copy) == sorted(originals[:20], key=lambda m: m[1])


# record killed at random moments: every message it received more than a second before the
# kill is read back, whole, in order, none after a gap.

RECORDERS = 10  # per storage and round, killed one after the other
ROUNDS = 1  # twenty tries, ten per storage
RATE = 50.0


def test_record_killed_at_random_moments_keeps_what_it_received_a_second_before(env, tmp_path):
    rng = random.Random(9)
    probe = Probe(int(env['ROS_DOMAIN_ID']))
    try:
        for round_ in range(ROUNDS):
            # A topic per round: the killed recorders of the last one still count as
            # subscribers until DDS notices that they are gone.
            topic = '/crash/image_%d' % round_
            publisher = probe.node.create_publisher(Image, topic, RELIABLE)
            recorders = {}
            for storage in ('mcap', 'sqlite3'):
                for index in range(RECORDERS):
                    bag = tmp_path / ('%s_%d_%d' % (storage, round_, index))
                    recorders[bag] = start(env, 'record', bag, '--topics', topic,
                                           '--storage', storage)
            wait_until(lambda: publisher.get_subscription_count() >= len(recorders), 60.0,
                       'the recorders to subscribe')
            time.sleep(0.5)
            kills = sorted(rng.uniform(1.2, 5.0) for _ in recorders)
            order = list(recorders)
            rng.shuffle(order)
            sent: List[Tuple[float, Image]] = []
            killed: Dict[Path, float] = {}
            begin = time.monotonic()
            while len(killed) < len(recorders):
                elapsed = time.monotonic() - begin
                while len(killed) < len(recorders) and kills[len(killed)] <= elapsed:
                    bag = order[len(killed)]
                    recorders[bag].kill()  # SIGKILL
                    killed[bag] = time.monotonic()
                sent.append((time.monotonic(), publish(publisher, len(sent))))
                time.sleep(max(0.0, begin + len(sent) / RATE - time.monotonic()))
            for bag, process in recorders.items():
                process.communicate(timeout=30)
                assert process.returncode == -signal.SIGKILL
                check_recording(bag, sent, killed[bag])
    finally:
        probe.close()


def publish(publisher: Any, index: int) -> Image:
    """Publish frame ``index`` (every fourth too large to share a chunk); return it."""
    width, height = (160, 150) if index % 4 == 0 else (32, 24)
    pixels = np.random.default_rng(index).integers(0, 256, (height, width, 3), np.uint8)
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3,
                data=pixels.tobytes())
    msg.header.frame_id = str(index)
    publisher.publish(msg)
    return msg


def check_recording(bag: Path, sent: List[Tuple[float, Image]], killed: float) -> None:
    with BagReader(bag) as reader:
        assert reader.cut_short and 'never closed' in reader.cut_short
    # CDR padding bytes are whatever the serializer left there: messages are compared.
    recorded = [deserialize_message(raw, Image) for _, _, raw in stored(bag)]
    due = sum(when < killed - 1.0 for when, _ in sent)
    assert len(recorded) >= due, '%s: %d of the %d messages sent more than 1 s before the ' \
        'kill' % (bag.name, len(recorded), due)
    assert recorded == [msg for _, msg in sent[:len(recorded)]], bag.name


# Acceptance: record killed 6 s into a 24 frames/s replay of full-size frames; segment_bag
# reads all but the last second of it; repair_bag makes it a complete bag that an
# independent MCAP reader (and sqlite3 itself) reads whole.

@pytest.fixture(scope='module')
def megamind_24fps(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('bags') / 'megamind'
    make_sample_bag(VIDEO, path, frames=180, rate=24.0, topic=CAMERA)
    return path


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_recording_killed_six_seconds_into_a_replay_is_segmented_and_repaired(
        storage, megamind_24fps, env, tmp_path, capsys):
    recording = tmp_path / 'recording'
    recorder = start(env, 'record', recording, '--topics', CAMERA, '--storage', storage)
    probe = Probe(int(env['ROS_DOMAIN_ID']))
    try:
        probe.subscribe(Image, CAMERA)  # tells when the replay starts
        replayer = start(env, 'replay_bag', megamind_24fps, '--wait-for-subscribers', 60,
                         '--subscribers', 2)
        first = probe.wait_for(CAMERA, timeout=60.0)[0]
        time.sleep(max(0.0, probe.arrival[id(first)] + 6.0 - time.time()))
        recorder.kill()  # SIGKILL, 6 s (144 frames) into the replay
        recorder.communicate(timeout=30)
        replayer.send_signal(signal.SIGINT)
        replayer.communicate(timeout=30)
    finally:
        probe.close()
    assert not is_complete(recording)
    before = stored(recording)
    assert len(before) >= 120

    out = tmp_path / 'segmented'
    params = categories_only(tmp_path / 'params.yaml')
    assert segment_bag_main([str(recording), str(out), '--params-file', str(params)]) == 0
    captured = capsys.readouterr()
    assert 'Bag %s was cut short (never closed: no metadata.yaml' % recording in captured.err
    assert 'reading its %d complete messages' % len(before) in captured.err
    assert 'segmented %d frames' % len(before) in captured.out

    assert repair_bag_main([str(recording)]) == 0  # in place
    assert 'wrote %d messages to %s, a complete bag' % (len(before), recording) in \
        capsys.readouterr().out
    assert is_complete(recording) and stored(recording) == before
    with BagReader(recording) as reader:
        assert reader.cut_short is None and reader.count([CAMERA]) == len(before)
    metadata = yaml.safe_load((recording / 'metadata.yaml').read_text())
    assert metadata['rosbag2_bagfile_information']['message_count'] == len(before)
    frames = [deserialize_message(raw, Image) for _, _, raw in before]
    if storage == 'mcap':
        with open(recording / 'recording.mcap', 'rb') as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            summary = reader.get_summary()
            assert summary.statistics.message_count == len(before)
            decoded = [(message.log_time, ros) for _, _, message, ros in
                       reader.iter_decoded_messages(log_time_order=True)]
    else:
        connection = sqlite3.connect('file:%s?mode=ro' % (recording / 'recording.db3'),
                                     uri=True)
        assert connection.execute('PRAGMA integrity_check').fetchone() == ('ok',)
        decoded = [(stamp_ns, deserialize_message(raw, Image)) for stamp_ns, raw in
                   connection.execute('SELECT timestamp, data FROM messages ORDER BY id')]
        connection.close()
    assert [stamp_ns for stamp_ns, _ in decoded] == [stamp_ns for _, stamp_ns, _ in before]
    for (_, msg), frame in zip(decoded, frames):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.width, msg.height,
                msg.encoding, bytes(msg.data)) == (
            frame.header.stamp.sec, frame.header.stamp.nanosec, frame.width, frame.height,
            frame.encoding, bytes(frame.data))


# segment_bag stopped late: what it wrote is a readable unfinished bag, and --resume completes
# it into the bag an uninterrupted run writes.

def frames_done(bag: Path, storage: str, process: subprocess.Popen, err: List[str]) -> int:
    """
    Count the frames the segment_bag ``process`` writing ``bag`` has done.

    An MCAP file is read while the process is stopped; sqlite3 keeps readers out while it
    writes, so there the progress bar tells.
    """
    if storage == 'sqlite3':
        return max((int(done) for done in re.findall(r' (\d+)/\d+ ', ''.join(err))),
                   default=0)
    process.send_signal(signal.SIGSTOP)
    try:
        with BagReader(bag) as reader:
            return reader.count(['/camera/category_mask'])
    except BagError:  # not created yet
        return 0
    finally:
        process.send_signal(signal.SIGCONT)


@pytest.mark.parametrize('storage, stop, share', [('mcap', signal.SIGKILL, 0.9),
                                                  ('sqlite3', signal.SIGINT, 0.5)])
def test_segment_bag_stopped_late_resumes_where_it_stopped(storage, stop, share, megamind_24fps,
                                                           tmp_path, capsys):
    params = categories_only(tmp_path / 'params.yaml')
    out = tmp_path / 'out'
    total = 180
    run = start({**os.environ}, 'segment_bag', megamind_24fps, out, '--params-file', params,
                '--storage', storage)
    output: List[str] = []
    reading = threading.Thread(target=lambda: output.extend(iter(
        lambda: run.stderr.read(64), '')), daemon=True)
    reading.start()
    while run.poll() is None:
        if frames_done(out, storage, run, output) >= share * total:
            run.send_signal(stop)
            break
        time.sleep(0.01)
    run.wait(timeout=60)
    reading.join(timeout=10)
    err = ''.join(output)
    assert run.returncode == (-stop if stop == signal.SIGKILL else 130), err
    if stop == signal.SIGINT:
        assert 'segment_bag: stopped; %s holds the frames segmented so far: run the same ' \
            'command with --resume' % out in err
    assert not is_complete(out)
    with BagReader(out) as reader:
        assert reader.cut_short
        if stop == signal.SIGKILL:
            assert reader.count(['/camera/category_mask']) >= share * total
    args = [str(megamind_24fps), str(out), '--params-file', str(params), '--storage', storage]
    assert segment_bag_main(args) == 1
    assert 'pass --resume to go on from where it stopped' in capsys.readouterr().err
    assert segment_bag_main(args + ['--resume']) == 0
    captured = capsys.readouterr()
    assert 'segmented %d frames' % total in captured.out
    assert 'was cut short' in captured.err and is_complete(out)
    assert not list(tmp_path.glob('.*'))  # the interrupted run's bag is gone
    straight = tmp_path / 'straight'
    assert segment_bag_main([str(megamind_24fps), str(straight), '--params-file', str(params),
                             '--storage', storage]) == 0
    assert stored(out) == stored(straight)


def test_a_truncated_sqlite3_file_is_refused_in_one_sentence(small_segmented, tmp_path, capsys):
    """sqlite3 refuses a file cut short as malformed: nothing of it is read, nothing crashes."""
    bag = tmp_path / 'bag'
    with BagReader(small_segmented) as reader, BagWriter(bag, 'sqlite3') as writer:
        for topic, connections in reader.connections.items():
            writer.add_topic(topic, reader.topics[topic], like=connections[0])
        for message in reader.messages(list(reader.topics)):
            writer.write_raw(message.topic, message.timestamp_ns, message.raw)
    database = bag / 'bag.db3'
    data = database.read_bytes()
    database.write_bytes(data[:len(data) // 2])
    assert segment_bag_main([str(bag), str(tmp_path / 'out')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('segment_bag: error: Cannot open bag %s' % bag) and \
        'malformed' in err and len(err.strip().splitlines()) == 1

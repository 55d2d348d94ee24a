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
What reaches the node with stock DDS settings, and the rough edges a new user meets.

The input's QoS follows the publishers; whole numbers for floats, a topic without publisher,
bag stamps without sim time and 8UC3 frames are each handled.

No Fast DDS profile in any process: the node gets none, and the test fails if this process
has one (its publisher's transport decides what a lost fragment costs).
"""

import os
import threading
import time
from typing import Dict, List, Tuple

import cv2
from image_segmenter_ros.node import input_images as ic
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.qos import qos_profile_sensor_data, QoSProfile, QoSReliabilityPolicy
from ros_harness import wait_until
from sensor_msgs.msg import Image
from test_image_segmenter_node import image_msg, MODEL, NodeUnderTest, pixels, start

PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
VGA_FRAMES = 240  # 8 s at 30 Hz
# A camera driver's publisher: reliable, a short history.
DRIVER_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def stock_env(env) -> Dict[str, str]:
    assert not set(PROFILE_VARIABLES) & set(os.environ), 'this test needs stock DDS settings'
    return {name: value for name, value in env.items() if name not in PROFILE_VARIABLES}


def status(node: NodeUnderTest, predicate, timeout: float = 15.0) -> Tuple[int, str, Dict]:
    """Level, message and values of the node's latest /diagnostics status once ``predicate``."""
    name = '%s/image_segmenter: segmentation' % node.namespace

    def latest():
        for msg in reversed(node.probe.messages('/diagnostics')):
            for item in msg.status:
                if item.name == name:
                    found = (item.level[0] if isinstance(item.level, bytes) else item.level,
                             item.message, {kv.key: kv.value for kv in item.values})
                    return found if predicate(*found) else None
    return wait_until(latest, timeout, 'a status of %s:\n%s' % (name, node.process.log))


def input_reliability(node: NodeUnderTest) -> List[str]:
    """Return the reliability of the node's input subscriptions, as the graph shows them."""
    return [info.qos_profile.reliability.name for info in
            node.probe.node.get_subscriptions_info_by_topic(node.input_topic)]


def test_video_mode_receives_every_vga_frame_of_a_reliable_publisher_and_follows_publishers(
        stock_env, probe, tmp_path_factory, megamind_frames):
    process = start(stock_env, tmp_path_factory, 'video_vga', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/vga', '-r', '__ns:=/v',
        '-p', 'running_mode:=VIDEO'])
    node = NodeUnderTest(probe, process, '/v', '/cam/vga', input_qos=DRIVER_QOS)
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])
    assert input_reliability(node) == ['RELIABLE']
    vga = [cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
           for frame in megamind_frames]
    messages = [image_msg(vga[index % len(vga)], 'bgr8', 'vga', 100.0 + index / 30)
                for index in range(VGA_FRAMES)]
    begin = time.monotonic()
    for index, msg in enumerate(messages):  # 30 Hz, on schedule
        time.sleep(max(0.0, begin + index / 30 - time.monotonic()))
        node.publish(msg)

    def vga_masks():
        return probe.messages(node.topic('category_mask'), lambda m: m.header.frame_id == 'vga')
    try:
        wait_until(lambda: len(vga_masks()) >= VGA_FRAMES, 30.0, 'every mask')
    except AssertionError:
        raise AssertionError('%d of %d frames segmented:\n%s' % (
            len(vga_masks()), VGA_FRAMES, process.log)) from None
    assert [m.header.stamp for m in vga_masks()] == [m.header.stamp for m in messages]
    values = node.diagnostics(lambda v: v['frames processed'] != '0')
    assert values['input reliability'] == 'reliable (as the publishers offer)'

    # The reliable publisher leaves, a best-effort one comes: the node follows, frames flow.
    probe.node.destroy_publisher(node.input)
    node.input = probe.node.create_publisher(Image, node.input_topic, qos_profile_sensor_data)
    wait_until(lambda: input_reliability(node) == ['BEST_EFFORT'], 10.0,
               'a best-effort subscription:\n%s' % process.log)
    for attempt in range(100):
        node.publish(image_msg(vga[0], 'bgr8', 'best_effort', 200.0 + attempt))
        if probe.messages(node.topic('category_mask'),
                          lambda m: m.header.frame_id == 'best_effort'):
            break
        time.sleep(0.1)
    else:
        raise AssertionError('no frame of a best-effort publisher came back:\n%s' % process.log)
    assert 'Subscribed to /cam/vga best effort' in process.log
    node.stop()


def test_qos_overrides_win_and_live_stream_stays_best_effort(stock_env, probe,
                                                             tmp_path_factory):
    nodes = {}
    for namespace, args in (('/o', ['-p', 'running_mode:=VIDEO', '-p',
                                    'qos_overrides./cam/o.subscription.reliability:=best_effort']),
                            ('/l', ['-p', 'running_mode:=LIVE_STREAM'])):
        process = start(stock_env, tmp_path_factory, 'qos' + namespace[1:], [
            '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam' + namespace,
            '-r', '__ns:=' + namespace] + args)
        nodes[namespace] = NodeUnderTest(probe, process, namespace, '/cam' + namespace,
                                         input_qos=DRIVER_QOS)
    for node in nodes.values():
        node.wait_connected([])
        assert input_reliability(node) == ['BEST_EFFORT']
        time.sleep(0.5)  # a node that follows its publishers would have switched by now
        assert input_reliability(node) == ['BEST_EFFORT']
        node.stop()


def set_parameter(node: NodeUnderTest, name: str, kind: int, **value) -> object:
    request = SetParameters.Request(parameters=[Parameter(
        name=name, value=ParameterValue(type=kind, **value))])
    return node.probe.call(SetParameters, '%s/image_segmenter/set_parameters' % node.namespace,
                           request).results[0]


def get_parameter(node: NodeUnderTest, name: str) -> ParameterValue:
    return node.probe.call(GetParameters, '%s/image_segmenter/get_parameters' % node.namespace,
                           GetParameters.Request(names=[name])).values[0]


def test_rough_edges_of_a_first_run(stock_env, probe, tmp_path_factory, engine,
                                    megamind_frames):
    """
    Whole numbers for overlay_alpha, a topic nobody publishes, bag stamps, 8UC3 frames.

    The node reads ``overlay_alpha: 1`` from a params file as 1.0 (it stopped with "must be a
    floating-point number"); with no publisher it warns and names the topic; stamps a day
    old get a hint at use_sim_time; 8UC3 frames are segmented as bgr8.
    """
    params = tmp_path_factory.mktemp('params') / 'whole.yaml'
    params.write_text('/**:\n  ros__parameters:\n    overlay_alpha: 1\n')
    process = start(stock_env, tmp_path_factory, 'rough', [
        '--params-file', 'config/%s.yaml' % MODEL, '--params-file', str(params),
        '-r', 'image:=/cam/typo', '-r', '__ns:=/e'])
    node = NodeUnderTest.__new__(NodeUnderTest)
    node.probe, node.process, node.namespace, node.input_topic = probe, process, '/e', '/cam/typo'
    level, message, _ = status(node, lambda level, message, values: level == 1)
    assert message == ('No frames received on /cam/typo for 5 s; publishers seen: 0 (is the '
                       'image topic remapped to the camera?)'), message
    value = get_parameter(node, 'overlay_alpha')
    assert (value.type, value.double_value) == (ParameterType.PARAMETER_DOUBLE, 1.0)
    # As `ros2 param set /e/image_segmenter overlay_alpha 0` sends it: an integer.
    assert set_parameter(node, 'overlay_alpha', ParameterType.PARAMETER_INTEGER,
                         integer_value=0).successful
    assert get_parameter(node, 'overlay_alpha').double_value == 0.0
    refused = set_parameter(node, 'overlay_alpha', ParameterType.PARAMETER_INTEGER,
                            integer_value=2)
    assert not refused.successful and refused.reason == (
        "Parameter 'overlay_alpha' must be a floating-point number from 0.0 to 1.0, got 2.0.")

    # Frames of a camera that publishes 8UC3, stamped a day ago (a bag replayed without sim
    # time): segmented as bgr8, and the latency figures are explained.
    NodeUnderTest.__init__(node, probe, process, '/e', '/cam/typo', input_qos=DRIVER_QOS)
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])
    frame = cv2.resize(megamind_frames[1], (360, 264), interpolation=cv2.INTER_AREA)
    day_ago = time.time() - 86400
    expected = engine.segment(frame).category_mask
    stop = threading.Event()

    def stream():  # a camera streams; LIVE_STREAM keeps the newest frame
        count = 0
        while not stop.is_set():
            msg = image_msg(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), 'rgb8', 'opencv_type',
                            day_ago + count / 15)
            msg.encoding = '8UC3'
            node.publish(msg)
            count += 1
            time.sleep(1 / 15)
    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        mask = probe.wait_for(node.topic('category_mask'),
                              lambda m: m.header.frame_id == 'opencv_type')[0]
        level, message, values = status(node, lambda level, message, values:
                                        'use_sim_time' in message)
    finally:
        stop.set()
        streamer.join()
    np.testing.assert_array_equal(pixels(mask, np.uint8), expected)
    assert level == 1 and message.startswith('Stamps on /cam/typo are 86') and \
        "behind this node's clock" in message, message
    assert values['latency measures'] == ("from each frame's header.stamp to its masks' "
                                          "publication, on the node's system clock")
    assert values['frames rejected'] == '0'
    assert ic.SUPPORTED_ENCODINGS[-3:] == ('8UC1', '8UC3', '8UC4')
    node.stop()
    assert 'Traceback' not in process.log

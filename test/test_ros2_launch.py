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
The launch files as users run them: ``ros2 launch`` in a process, inspected with the ros2 CLI.

Each launch sets several arguments at once (every launch costs seconds): the node's name and
namespace come from ``ros2 node list``, its parameters from ``ros2 param get/dump``, frames
published on the remapped input come back as masks with the input's header, and the latched
labels are read with ``ros2 topic echo --once``.
"""

import shutil
from typing import Any, Dict, List

import cv2
from image_segmenter_ros.node.overlay import render_overlay
from image_segmenter_ros.node.parameters import PARAMETERS
from launch_harness import Launch, launch_environment, MISSING, ros2
import numpy as np
import pytest
from ros_harness import PACKAGE_ROOT, RELIABLE, stamp, wait_until
from sensor_msgs.msg import CompressedImage, Image
from test_image_segmenter_node import image_msg, pixels
import yaml

# A mark, not a module-level skip: launch_testing's pytest plugin imports every test module
# while collecting, and a skip raised there would end the collection of the whole run.
pytestmark = pytest.mark.skipif(bool(MISSING), reason='ros2 launch cannot run here: %s'
                                % MISSING)

LAUNCH_FILES = ('image_segmenter.launch.py', 'image_segmenter.launch.xml',
                'multi_camera.launch.py')
NODE_ARGUMENTS = ('params_file', 'image_topic', 'use_sim_time', 'log_level', 'dds_profile')


@pytest.fixture(scope='module')
def cli_env(env, tmp_path_factory) -> Dict[str, str]:
    """Environment of the ros2 commands: the module's domain, ament prefixes, logs in tmp."""
    return launch_environment(int(env['ROS_DOMAIN_ID']), tmp_path_factory.mktemp('ros_logs'))


@pytest.fixture
def start(cli_env, tmp_path):
    """Start ``ros2 launch`` with arguments; every launch is killed after the test."""
    launches: List[Launch] = []

    def started(*arguments: str) -> Launch:
        log = tmp_path / ('launch%d.log' % len(launches))
        launches.append(Launch(list(arguments), cli_env, log))
        return launches[-1]
    yield started
    for launch in launches:
        launch.close()


@pytest.fixture(scope='module')
def frame(megamind_frames) -> np.ndarray:
    """Return a real frame with a person, small enough to cross DDS in one go."""
    return np.ascontiguousarray(cv2.resize(megamind_frames[0], (360, 264)))


def params_file(tmp_path, **values: Any) -> str:
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': values}}))
    return str(path)


def parameters(cli_env, node: str) -> Dict[str, Any]:
    """All parameters of a node, through ``ros2 param dump``."""
    dump = ros2(['param', 'dump', node, '--no-daemon', '--timeout', '20'], cli_env)
    assert dump.returncode == 0, dump.stdout
    return yaml.safe_load(dump.stdout)[node]['ros__parameters']


def param_get(cli_env, node: str, name: str) -> str:
    got = ros2(['param', 'get', node, name, '--no-daemon', '--timeout', '20'], cli_env)
    assert got.returncode == 0, got.stdout
    return got.stdout.strip()


def param_set(cli_env, node: str, name: str, value: str) -> str:
    return ros2(['param', 'set', node, name, value, '--no-daemon', '--timeout', '20'],
                cli_env).stdout.strip()


def node_names(cli_env, expected: List[str]) -> List[str]:
    """``ros2 node list`` once it shows the expected nodes (discovery takes a moment)."""
    def listed():
        names = ros2(['node', 'list', '--no-daemon', '--spin-time', '2'], cli_env).stdout.split()
        return names if set(expected) <= set(names) else None
    return wait_until(listed, 60.0, 'ros2 node list to show %s' % expected, poll=0.1)


def echo_labels(cli_env, topic: str) -> str:
    """
    Read the latched labels as a user does; the message is the labels YAML.

    Type and QoS are given, so echo waits for the message instead of giving up when it has
    not discovered the publisher yet.
    """
    echo = ros2(['topic', 'echo', '--once', '--full-length', '--no-daemon',
                 '--qos-durability', 'transient_local', '--qos-reliability', 'reliable',
                 topic, 'std_msgs/msg/String'], cli_env)
    assert echo.returncode == 0, echo.stdout
    return yaml.safe_load(yaml.safe_load(echo.stdout.split('---')[0])['data'])


class Camera:
    """A camera-like publisher in the probe: one frame again and again until it is answered."""

    def __init__(self, probe, topic: str, msg_type: type = Image):
        self.probe = probe
        self.publisher = probe.node.create_publisher(msg_type, topic, RELIABLE)
        self.sent = 0

    def answered(self, msg: Any, output: str, timeout: float = 60.0) -> Any:
        """Publish ``msg`` until ``output`` has a message with its header; return that one."""
        self.probe.subscribe(Image, output)
        frame_id = msg.header.frame_id

        def answer():
            found = self.probe.messages(output, lambda m: m.header.frame_id == frame_id)
            if not found:
                self.sent += 1
                msg.header.stamp = stamp(1000.0 + self.sent)  # increasing, as VIDEO mode wants
                self.publisher.publish(msg)
            return found
        found = wait_until(answer, timeout, 'an answer on %s to %s' % (output, frame_id),
                           poll=0.1)[0]
        assert found.header.stamp in [stamp(1000.0 + n) for n in range(1, self.sent + 1)]
        return found


def test_show_args_lists_every_node_parameter_in_every_launch_file(cli_env):
    outputs = {}
    for name in LAUNCH_FILES:
        shown = ros2(['launch', 'image_segmenter_ros', name, '--show-args'], cli_env)
        assert shown.returncode == 0, shown.stdout
        outputs[name] = shown.stdout
        for argument in NODE_ARGUMENTS:
            assert "'%s':" % argument in shown.stdout, (name, argument)
        for spec in PARAMETERS:
            assert "'%s':\n        %s Unset: the params file value" % (
                spec.name, spec.description) in shown.stdout, (name, spec.name)
    assert outputs['image_segmenter.launch.xml'] == outputs['image_segmenter.launch.py']
    assert "'cameras':" in outputs['multi_camera.launch.py']


@pytest.mark.parametrize('arguments, sentence', [
    (['multi_camera.launch.py', 'cameras:=front,cam-1'],
     "Argument 'cameras' has 'cam-1', which is not a ROS namespace: use letters, digits and "
     'underscores, not starting with a digit, e.g. front, rear_left, cam1 (nested: '
     'robot1/front).'),
    (['multi_camera.launch.py', 'cameras:=2nd'], "Argument 'cameras' has '2nd', which"),
    (['image_segmenter.launch.xml', 'rotation_degrees:=45'],
     "Parameter 'rotation_degrees' must be an integer from 0 to 270 in steps of 90, got 45."),
    (['image_segmenter.launch.py', 'running_mode:=VIDEOS'],
     "Parameter 'running_mode' must be one of IMAGE, VIDEO, LIVE_STREAM, got 'VIDEOS'."),
])
def test_a_bad_argument_stops_launch_with_one_sentence(start, arguments, sentence):
    launch = start(*arguments)
    assert launch.wait(60.0) != 0, launch.log
    assert sentence in launch.log
    assert 'process started' not in launch.log and 'Traceback' not in launch.log, launch.log


def test_python_launch_file_arguments_parameters_frames_labels_and_cli_parameter_changes(
        start, cli_env, probe, engine, frame, tmp_path):
    """
    Every behaviour-changing argument at once, in VIDEO mode with the selfie model.

    The params file says otherwise for model and use_sim_time (the arguments win) and sets
    queue_size and overlay_alpha (no argument given: the file's values stay).
    """
    profile = tmp_path / 'profile.xml'
    shutil.copy(PACKAGE_ROOT / 'config' / 'fastdds_large_images.xml', profile)
    launch = start('image_segmenter.launch.py',
                   'params_file:=' + params_file(
                       tmp_path, model='selfie_segmentation_landscape', use_sim_time=True,
                       queue_size=7, overlay_alpha=0.25),
                   'model:=selfie_segmentation', 'image_topic:=/py_cam/image_raw',
                   'namespace:=py_robot', 'running_mode:=VIDEO', 'use_sim_time:=false',
                   'log_level:=debug', 'dds_profile:=%s' % profile, 'rotation_degrees:=90')
    launch.wait_for('Segmenting /py_cam/image_raw with selfie_segmentation in VIDEO mode')
    node = '/py_robot/image_segmenter'
    assert node in node_names(cli_env, [node])
    values = parameters(cli_env, node)
    assert (values['model'], values['running_mode'], values['use_sim_time']) == (
        'selfie_segmentation', 'VIDEO', False)
    assert (values['queue_size'], values['overlay_alpha'], values['rotation_degrees']) == (
        7, 0.25, 90)
    assert '[DEBUG]' in launch.log  # log_level
    node_pid = int(launch.log.split('process started with pid [')[1].split(']')[0])
    environ = open('/proc/%d/environ' % node_pid, 'rb').read().split(b'\0')
    assert ('FASTRTPS_DEFAULT_PROFILES_FILE=%s' % profile).encode() in environ

    camera = Camera(probe, '/py_cam/image_raw')
    probe.subscribe(Image, '/py_robot/overlay')
    first = camera.answered(image_msg(frame, 'rgb8', 'py_first', 0.0), '/py_robot/category_mask')
    assert (first.height, first.width, first.encoding) == (264, 360, 'mono8')
    assert np.array_equal(pixels(first, np.uint8), engine.segment(frame, 90).category_mask)
    labels = echo_labels(cli_env, '/py_robot/labels')
    assert labels['model'] == 'selfie_segmentation'
    assert [c['name'] for c in labels['classes']] == ['background', 'selfie']

    # Run-time parameters through the CLI: the next frame uses them.
    assert param_set(cli_env, node, 'rotation_degrees', '180') == 'Set parameter successful'
    assert param_set(cli_env, node, 'overlay_alpha', '0.0') == 'Set parameter successful'
    second = camera.answered(image_msg(frame, 'rgb8', 'py_second', 0.0),
                             '/py_robot/category_mask')
    category = pixels(second, np.uint8)
    assert np.array_equal(category, engine.segment(frame, 180).category_mask)
    overlay = probe.wait_for('/py_robot/overlay', lambda m: m.header.frame_id == 'py_second')[0]
    assert np.array_equal(pixels(overlay, np.uint8),
                          render_overlay(frame, category, 0.0, 'rgb8')[0])
    # A read-only parameter is refused with the reason, and keeps its value.
    read_only = next(spec for spec in PARAMETERS if spec.read_only)
    before = param_get(cli_env, node, read_only.name)
    value = (str(not read_only.default).lower() if isinstance(read_only.default, bool)
             else 'other_%s' % read_only.default)
    assert param_set(cli_env, node, read_only.name, value) == (
        'Setting parameter failed: Trying to set a read-only parameter: %s.' % read_only.name)
    assert param_get(cli_env, node, read_only.name) == before


def test_xml_launch_file_with_compressed_input_and_the_params_file_values(
        start, cli_env, probe, frame, tmp_path):
    """
    The XML launch file: other arguments, a compressed camera, params-file values kept.

    ``input_transport:=compressed rotation_degrees:=90`` were once ignored (no such
    arguments); ``overlay_alpha:=1`` is a whole number for a floating-point parameter.
    """
    launch = start('image_segmenter.launch.xml',
                   'params_file:=' + params_file(tmp_path, use_sim_time=True, queue_size=3,
                                                 display_names_locale='en'),
                   'model:=selfie_segmentation_landscape', 'image_topic:=/xml_cam/image',
                   'namespace:=xml_robot', 'running_mode:=IMAGE', 'log_level:=warn',
                   'dds_profile:=none', 'input_transport:=compressed', 'rotation_degrees:=90',
                   'overlay_alpha:=1', 'output_confidence_masks:=false', 'num_threads:=1')
    node = '/xml_robot/image_segmenter'
    node_names(cli_env, [node])
    values = parameters(cli_env, node)
    assert values['use_sim_time'] is True and values['queue_size'] == 3  # from the file
    assert {name: values[name] for name in (
        'model', 'running_mode', 'input_transport', 'rotation_degrees', 'overlay_alpha',
        'output_confidence_masks', 'num_threads')} == {
        'model': 'selfie_segmentation_landscape', 'running_mode': 'IMAGE',
        'input_transport': 'compressed', 'rotation_degrees': 90, 'overlay_alpha': 1.0,
        'output_confidence_masks': False, 'num_threads': 1}
    assert param_get(cli_env, node, 'running_mode') == 'String value is: IMAGE'
    node_pid = int(launch.log.split('process started with pid [')[1].split(']')[0])
    environ = open('/proc/%d/environ' % node_pid, 'rb').read().split(b'\0')
    assert not any(line.startswith(b'FASTRTPS_DEFAULT_PROFILES_FILE=') for line in environ)

    jpeg = CompressedImage(format='jpeg', data=cv2.imencode(
        '.jpg', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes())
    jpeg.header.frame_id = 'xml_camera'
    camera = Camera(probe, '/xml_cam/image/compressed', CompressedImage)
    mask = camera.answered(jpeg, '/xml_robot/category_mask')
    assert (mask.height, mask.width, mask.encoding) == (264, 360, 'mono8')
    labels = echo_labels(cli_env, '/xml_robot/labels')
    assert labels['model'] == 'selfie_segmentation_landscape'
    assert [c['name'] for c in labels['classes']] == ['background', 'selfie']
    assert 'Segmenting' not in launch.log, launch.log  # log_level warn hides the INFO line


def test_multi_camera_launch_gives_each_camera_its_own_node(start, cli_env, probe, frame):
    start('multi_camera.launch.py', 'cameras:=mc_front,mc_rear', 'rotation_degrees:=180',
          'params_file:=%s' % (PACKAGE_ROOT / 'config' / 'selfie_segmentation_landscape.yaml'))
    nodes = ['/mc_front/image_segmenter', '/mc_rear/image_segmenter']
    node_names(cli_env, nodes)
    for node in nodes:  # the arguments reach every camera
        assert param_get(cli_env, node, 'rotation_degrees') == 'Integer value is: 180'
    cameras = ('mc_front', 'mc_rear')
    for camera in cameras:
        Camera(probe, '/%s/image_raw' % camera).answered(
            image_msg(frame, 'rgb8', camera + '_camera', 0.0), '/%s/category_mask' % camera)
    for camera, other in zip(cameras, reversed(cameras)):  # seconds later: nothing crossed
        assert not probe.messages('/%s/category_mask' % camera,
                                  lambda m: m.header.frame_id == other + '_camera')

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
The lifecycle node over DDS, through the lifecycle_msgs services and ``ros2 lifecycle``.

Each transition, a configure that fails, no frame taken and no CPU spent while inactive, and
``ros2 launch ... lifecycle:=true`` with and without autostart.
"""

import os
from pathlib import Path
import signal
import sys
import time
from typing import Any, Dict, Iterator, List

import cv2
from launch_harness import Launch, launch_environment, MISSING, ros2, ros2_daemons
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from ros_harness import LATCHED, NodeProcess, wait_until
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_image_segmenter_node import Camera, MODEL, NodeUnderTest
import yaml

LIFECYCLE_EXECUTABLE = str(Path(sys.executable).parent / 'image_segmenter_lifecycle_node')
INACTIVE_CPU_SHARE = 0.05  # of one core, while frames are sent to the inactive node


class LifecycleProcess(NodeProcess):
    """The installed ``image_segmenter_lifecycle_node`` with the given ROS arguments."""

    def __init__(self, ros_args: List[str], env: Dict[str, str], log_path: Path):
        self._start([LIFECYCLE_EXECUTABLE, '--ros-args'] + ros_args, env, log_path)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path('/proc/%d/stat' % pid).read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def change(node: NodeUnderTest, transition: int) -> bool:
    return node.probe.call(ChangeState, '/lc/image_segmenter/change_state', ChangeState.Request(
        transition=Transition(id=transition))).success


def state(node: NodeUnderTest) -> int:
    return node.probe.call(GetState, '/lc/image_segmenter/get_state',
                           GetState.Request()).current_state.id


def status(node: NodeUnderTest, predicate) -> Any:
    name = '/lc/image_segmenter: segmentation'

    def latest():
        for msg in reversed(node.probe.messages('/diagnostics')):
            for item in msg.status:
                if item.name == name:
                    return item if predicate(item) else None
    return wait_until(latest, 15.0, 'a status of %s:\n%s' % (name, node.process.log))


@pytest.fixture(scope='module')
def frame(megamind_frames) -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(megamind_frames[0], (320, 240)))


def test_transitions_over_the_lifecycle_services(env, probe, tmp_path_factory, frame):
    process = LifecycleProcess([
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/lc', '-r', '__ns:=/lc',
        '-p', 'model:=/nonexistent/model.tflite'],
        env, tmp_path_factory.mktemp('logs') / 'lifecycle.log')
    node = NodeUnderTest(probe, process, '/lc', '/cam/lc', input_qos=QoSProfile(
        depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
    probe.subscribe(Image, node.topic('category_mask'))
    probe.subscribe(String, node.topic('labels'), LATCHED)
    wait_until(lambda: state(node) == State.PRIMARY_STATE_UNCONFIGURED, 30.0, 'unconfigured')

    # A configure that fails leaves the node unconfigured, with the start-up sentence.
    assert not change(node, Transition.TRANSITION_CONFIGURE)
    assert state(node) == State.PRIMARY_STATE_UNCONFIGURED
    reason = "Parameter 'model' ('/nonexistent/model.tflite')"
    assert 'Not configured: ' + reason in process.log
    assert status(node, lambda s: s.message.startswith('Unconfigured: ' + reason)).level == \
        b'\x02'
    result = probe.call(SetParameters, '/lc/image_segmenter/set_parameters', SetParameters.Request(
        parameters=[Parameter(name='model', value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=MODEL))])).results[0]
    assert result.successful, result.reason
    assert change(node, Transition.TRANSITION_CONFIGURE)
    assert state(node) == State.PRIMARY_STATE_INACTIVE
    wait_until(lambda: probe.node.count_publishers(node.topic('category_mask')) == 1, 10.0,
               'the category mask topic')

    # Inactive: frames are not taken, and the process idles.
    camera = Camera(node, [frame], 'lc_')
    try:
        time.sleep(1.0)
        before = cpu_seconds(process.process.pid)
        time.sleep(3.0)
        share = (cpu_seconds(process.process.pid) - before) / 3.0
        assert share < INACTIVE_CPU_SHARE, 'inactive node used %.0f %% CPU' % (100 * share)
        assert not probe.messages(node.topic('category_mask'))
        values = {kv.key: kv.value for kv in status(node, lambda s: True).values}
        assert values['frames received'] == '0' and values['state'] == 'inactive'

        assert change(node, Transition.TRANSITION_ACTIVATE)
        assert state(node) == State.PRIMARY_STATE_ACTIVE
        probe.wait_for(node.topic('category_mask'), count=5, timeout=20.0)
        labels = probe.wait_for(node.topic('labels'))[0]
        assert yaml.safe_load(labels.data)['model'] == MODEL
        status(node, lambda s: s.message == 'Segmenting')

        assert change(node, Transition.TRANSITION_DEACTIVATE)
        time.sleep(0.5)  # masks of frames in flight
        count = len(probe.messages(node.topic('category_mask')))
        time.sleep(1.0)
        assert len(probe.messages(node.topic('category_mask'))) == count
    finally:
        camera.stop()
    assert change(node, Transition.TRANSITION_CLEANUP)
    assert state(node) == State.PRIMARY_STATE_UNCONFIGURED
    wait_until(lambda: probe.node.count_publishers(node.topic('category_mask')) == 0, 10.0,
               'the output topics to go')
    assert change(node, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert state(node) == State.PRIMARY_STATE_FINALIZED
    assert process.stop(signal.SIGINT) == 0, process.log
    assert 'Traceback' not in process.log


@pytest.fixture(scope='module')
def cli_env(env, tmp_path_factory) -> Iterator[Dict[str, str]]:
    if MISSING:
        pytest.skip('ros2 launch cannot run here: ' + MISSING)
    cli_env = launch_environment(int(env['ROS_DOMAIN_ID']), tmp_path_factory.mktemp('ros_logs'))
    yield cli_env
    # The lifecycle verbs start the test domain's ros2 daemon (without one each call would wait
    # seconds for discovery); it must not outlive the tests.
    ros2(['daemon', 'stop'], cli_env)
    wait_until(lambda: not ros2_daemons(cli_env['ROS_DOMAIN_ID']), 10.0,
               "the test domain's ros2 daemon to stop")


def lifecycle(cli_env: Dict[str, str], verb: str, *arguments: str) -> str:
    done = ros2(['lifecycle', verb, '/ll/image_segmenter', *arguments], cli_env)
    assert done.returncode == 0, done.stdout
    return done.stdout.strip()


def test_launch_with_lifecycle_and_the_ros2_lifecycle_cli(cli_env, probe, tmp_path, frame):
    shown = ros2(['launch', 'image_segmenter_ros', 'image_segmenter.launch.py', '--show-args'],
                 cli_env).stdout
    assert "'lifecycle':" in shown and "'autostart':" in shown
    launches: List[Launch] = []
    try:
        # Without autostart: unconfigured until ros2 lifecycle moves it.
        launches.append(Launch(['image_segmenter.launch.py', 'lifecycle:=true',
                                'autostart:=false', 'namespace:=ll', 'image_topic:=/cam/ll'],
                               cli_env, tmp_path / 'manual.log'))
        wait_until(lambda: ros2(['lifecycle', 'get', '/ll/image_segmenter'],
                                cli_env).stdout.startswith('unconfigured'), 60.0,
                   'the lifecycle node:\n%s' % launches[-1].log)
        lifecycle(cli_env, 'set', 'configure')
        assert lifecycle(cli_env, 'get').startswith('inactive')
        lifecycle(cli_env, 'set', 'activate')
        assert lifecycle(cli_env, 'get').startswith('active')
        node = NodeUnderTest(probe, None, '/ll', '/cam/ll', input_qos=QoSProfile(
            depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
        probe.subscribe(Image, node.topic('category_mask'))
        camera = Camera(node, [frame], 'lc_')
        try:
            probe.wait_for(node.topic('category_mask'), count=3, timeout=20.0)
        finally:
            camera.stop()
        lifecycle(cli_env, 'set', 'deactivate')
        assert lifecycle(cli_env, 'get').startswith('inactive')
        launches[-1].signal(signal.SIGINT, group=True)
        assert launches[-1].wait(30.0) == 0
        # With autostart (the default): active without any command.
        launches.append(Launch(['image_segmenter.launch.py', 'lifecycle:=true', 'namespace:=ll',
                                'image_topic:=/cam/ll'], cli_env, tmp_path / 'auto.log'))
        wait_until(lambda: ros2(['lifecycle', 'get', '/ll/image_segmenter'],
                                cli_env).stdout.startswith('active'), 60.0,
                   'the node to activate:\n%s' % launches[-1].log)
        launches[-1].signal(signal.SIGINT, group=True)
        assert launches[-1].wait(30.0) == 0
        for launch in launches:
            assert 'Traceback' not in launch.log, launch.log
    finally:
        for launch in launches:
            launch.close()

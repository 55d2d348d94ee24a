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
Stopping the node executable with real signals, as a terminal and ``ros2 launch`` do.

Ctrl-C in a terminal running ``ros2 launch`` reaches the node twice (the terminal's process
group, then launch forwarding it), a few milliseconds apart; launch escalates to SIGTERM. Every
way must end with exit code 0 and no traceback, within 2 s, at any moment: during the imports,
while the model loads, and while frames are being segmented; and leave none of the node's
shared-memory segments behind in /dev/shm.
"""

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import List, Tuple

import cv2
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_harness import NodeProcess, Probe, wait_until
from sensor_msgs.msg import Image
from test_image_segmenter_node import image_msg, MODEL, NodeUnderTest

STOP_SEC = 2.0
# (first signal, second signal or None, seconds between them); each way is repeated.
WAYS = [(signal.SIGINT, None, 0.0), (signal.SIGINT, signal.SIGINT, 0.002),
        (signal.SIGINT, signal.SIGINT, 0.05), (signal.SIGTERM, None, 0.0),
        (signal.SIGTERM, signal.SIGINT, 0.01)]
REPEATS = 3


def stop_and_time(process: NodeProcess, first: int, second: int, gap: float) -> Tuple[int, float]:
    """Send the signal(s); return the exit code and the seconds from the first signal to exit."""
    sent = time.monotonic()
    process.process.send_signal(first)
    if second is not None:
        time.sleep(gap)
        if process.process.poll() is None:
            process.process.send_signal(second)
    code = process.wait(10.0)
    return code, time.monotonic() - sent


def own_segments(pid: int) -> List[Path]:
    """Return the Fast DDS shared-memory segments a process created (it holds their locks)."""
    segments = []
    for descriptor in Path('/proc/%d/fd' % pid).iterdir():
        try:
            target = Path(os.readlink(descriptor))
        except OSError:
            continue
        if (target.parent == Path('/dev/shm') and target.name.endswith('_el')
                and target.name.startswith('fastrtps_')
                and not target.name.startswith('fastrtps_port')):
            segments += [target, target.with_name(target.name[:-len('_el')])]
    return segments


def assert_clean(code: int, elapsed: float, log: str, what: str) -> None:
    assert code == 0, '%s: exit code %d:\n%s' % (what, code, log)
    assert elapsed < STOP_SEC, '%s: %.2f s to stop:\n%s' % (what, elapsed, log)
    for spam in ('Traceback', 'KeyboardInterrupt', 'Error', 'did not stop'):
        assert spam not in log, '%s:\n%s' % (what, log)


# Libraries the node's start-up maps, in about this order: a signal is sent as soon as one is
# (Python's own start-up, before any code of the node runs, is not the node's to handle).
STARTUP_MARKERS = ('_multiarray_umath', 'cv2', '_rclpy_pybind11', 'interpreter_wrapper')


@pytest.mark.parametrize('marker', STARTUP_MARKERS)
def test_ctrl_c_during_the_imports_is_a_clean_stop(env, tmp_path_factory, marker):
    process = NodeProcess(['--params-file', 'config/%s.yaml' % MODEL, '-r', '__ns:=/early'],
                          env, tmp_path_factory.mktemp('logs') / 'early.log')
    maps = Path('/proc/%d/maps' % process.process.pid)
    wait_until(lambda: marker in maps.read_text() or process.process.poll() is not None,
               30.0, '%s to be loaded' % marker, poll=0.002)
    code, elapsed = stop_and_time(process, signal.SIGINT, None, 0.0)
    assert_clean(code, elapsed, process.log, 'SIGINT once %s is loaded' % marker)


def test_every_way_of_stopping_a_busy_node_is_clean(env, tmp_path_factory, megamind_frames):
    """Nodes segmenting a 15 Hz stream, each stopped by one way; every way several times."""
    # Small enough for one DDS fragment: best-effort frames then arrive even on a busy machine.
    frame = cv2.resize(megamind_frames[0], (160, 120), interpolation=cv2.INTER_AREA)
    logs = tmp_path_factory.mktemp('logs')
    failures: List[str] = []
    for repeat in range(REPEATS):
        # A test-side node per round: a Fast DDS participant that saw ten nodes end without DDS
        # teardown in a few seconds (docs/ros2_launch.md#stopping) was seen, in 3 runs of 15,
        # no longer reaching the next round's nodes over shared memory.
        probe = Probe(int(env['ROS_DOMAIN_ID']))
        nodes = []
        for index, way in enumerate(WAYS):
            namespace = '/stop%d_%d' % (repeat, index)
            process = NodeProcess(['--params-file', 'config/%s.yaml' % MODEL, '-r',
                                   'image:=/cam/stop%d' % repeat, '-r', '__ns:=' + namespace],
                                  env, logs / ('%s.log' % namespace[1:]))
            nodes.append((NodeUnderTest(probe, process, namespace, '/cam/stop%d' % repeat,
                                        input_qos=qos_profile_sensor_data), way))
        for node, _ in nodes:
            probe.subscribe(Image, node.topic('category_mask'))
        publisher = nodes[0][0]
        done = threading.Event()

        def stream():
            count = 0
            while not done.is_set():
                publisher.publish(image_msg(frame, 'rgb8', 'load', 1.0 + count))
                count += 1
                time.sleep(1 / 15)
        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            for node, _ in nodes:  # each node is segmenting when it is stopped
                wait_until(lambda: probe.messages(node.topic('category_mask')), 60.0,
                           'masks from %s:\n%s' % (node.namespace, node.process.log))
            for node, (first, second, gap) in nodes:
                segments = own_segments(node.process.process.pid)
                assert segments, 'no shared-memory segment of %s found' % node.namespace
                code, elapsed = stop_and_time(node.process, first, second, gap)
                what = '%s by %s then %s' % (node.namespace, signal.Signals(first).name,
                                             signal.Signals(second).name if second else 'nothing')
                try:
                    assert_clean(code, elapsed, node.process.log, what)
                except AssertionError as error:
                    failures.append(str(error))
                left = [str(path) for path in segments if path.exists()]
                if left:
                    failures.append('%s left its shared memory: %s' % (what, ', '.join(left)))
        finally:
            done.set()
            streamer.join()
            probe.close()
    assert not failures, '\n\n'.join(failures)


# The node module's import, replaced by one that creates a class whose attribute receives a
# real SIGTERM while Python sets it up (``__set_name__``): Python 3.11 passes the handler's
# KeyboardInterrupt on as a RuntimeError, as it did for one signal of a CI run among the
# node's own dataclasses.
INTERRUPTED_CLASS = """
import importlib.abc, importlib.util, os, signal, sys

class Interrupted:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGTERM)

class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == 'image_segmenter_ros.node.image_segmenter_node':
            return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        type('Metadata', (), {'labels': Interrupted()})

sys.meta_path.insert(0, Finder())
from image_segmenter_ros.node.main import main
sys.exit(main())
"""


def test_a_stop_that_interrupts_a_class_being_created_is_clean(env):
    run = subprocess.run([sys.executable, '-c', INTERRUPTED_CLASS], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr, run.stderr

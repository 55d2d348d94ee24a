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
A real ROS graph for tests: the node executable as a process, and a probe node in the test.

Every process stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in a domain of its
own test module, so parallel or leftover runs never cross-talk.
"""

import fcntl
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple
import zlib

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
NODE_EXECUTABLE = str(Path(sys.executable).parent / 'image_segmenter_node')
RELIABLE = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


# Domains this process holds, by module: a lock file each, kept open (so locked) until the
# process ends.
_CLAIMED_DOMAINS: Dict[str, Tuple[int, Any]] = {}


def domain_id(module_name: str) -> int:
    """
    Pick a ROS domain (1..100) for a test module, one that no other run on this machine holds.

    Each domain is claimed with a lock on a file in the temporary folder, held until this
    process ends, so parallel runs (tests, benchmarks) never share one.
    """
    if module_name in _CLAIMED_DOMAINS:
        return _CLAIMED_DOMAINS[module_name][0]
    first = zlib.crc32(module_name.encode())
    for step in range(100):
        domain = 1 + (first + step) % 100
        if any(domain == held for held, _ in _CLAIMED_DOMAINS.values()):
            continue
        path = Path(tempfile.gettempdir()) / ('image_segmenter_ros_domain_%d.lock' % domain)
        try:
            lock = open(path, 'w')
        except OSError:  # another user's lock file
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _CLAIMED_DOMAINS[module_name] = (domain, lock)
        return domain
    raise RuntimeError('Every ROS domain from 1 to 100 is held by another run.')


def remove_stale_shared_memory(folder: Path = Path('/dev/shm')) -> int:
    """
    Remove the Fast DDS shared-memory files no running process holds; return how many.

    As ``fastdds shm clean`` does: a file whose ``_el`` lock nobody holds belonged to a process
    that ended without DDS teardown (a stopped node, a killed tool). Left there, they fill
    ``/dev/shm`` over a test run, and stale ones can disturb new participants
    (eProsima/Fast-DDS#1144).
    """
    removed = 0
    for lock in folder.glob('fastrtps_*_el'):
        try:
            with open(lock, 'rb') as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                Path(str(lock)[:-len('_el')]).unlink(missing_ok=True)
                lock.unlink()
                removed += 1
        except OSError:  # held by a running process, or removed meanwhile
            continue
    return removed


def ros_environment(domain: int) -> Dict[str, str]:
    """Return the environment every rclpy process of a test module runs with."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               RCUTILS_LOGGING_BUFFERED_STREAM='0', PYTHONUNBUFFERED='1')
    env.pop('ROS_LOCALHOST_ONLY', None)
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               poll: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError('Timed out after %.1f s waiting for %s.' % (timeout, what))


# Every process the tests start: conftest kills those a test leaves running (it failed first).
STARTED: List[subprocess.Popen] = []


def track(process: subprocess.Popen) -> subprocess.Popen:
    """Add a process the test starts to STARTED; return it."""
    STARTED.append(process)
    return process


class NodeProcess:
    """The installed ``image_segmenter_node`` with the arguments a launch file would pass."""

    def __init__(self, ros_args: List[str], env: Dict[str, str], log_path: Path):
        self._start([NODE_EXECUTABLE, '--ros-args'] + ros_args, env, log_path)

    def _start(self, command: Sequence[str], env: Dict[str, str], log_path: Path) -> None:
        self.command = list(command)
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.process = track(subprocess.Popen(self.command, cwd=PACKAGE_ROOT, env=env,
                                              stdout=self._log, stderr=subprocess.STDOUT))

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Stop the node the way ros2 launch does; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError('The node did not exit within %.0f s of signal %d:\n%s'
                                 % (timeout, sig, self.log)) from None


class Probe:
    """A test-side node spinning in a thread: publishes inputs and records what comes out."""

    def __init__(self, domain: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node('image_segmenter_test_probe', context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self.received: Dict[str, List[Any]] = {}
        self.arrival: Dict[int, float] = {}

    def subscribe(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE) -> Any:
        """Record every message of ``topic``, and its wall-clock arrival time (latency)."""
        self.received.setdefault(topic, [])

        def record(msg: Any) -> None:
            with self._lock:
                self.received[topic].append(msg)
                self.arrival[id(msg)] = time.time()
        return self.node.create_subscription(msg_type, topic, record, qos)

    def messages(self, topic: str, predicate: Callable[[Any], bool] = lambda msg: True) -> List:
        with self._lock:
            return [msg for msg in self.received.get(topic, []) if predicate(msg)]

    def wait_for(self, topic: str, predicate: Callable[[Any], bool] = lambda msg: True,
                 timeout: float = 10.0, count: int = 1) -> List:
        return wait_until(lambda: len(self.messages(topic, predicate)) >= count and
                          self.messages(topic, predicate), timeout,
                          '%d message(s) on %s' % (count, topic))

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            wait_until(client.service_is_ready, timeout, 'service %s' % name)
            future = client.call_async(request)
            wait_until(future.done, timeout, 'a response from %s' % name)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def stamp(seconds: float) -> Any:
    """Return a builtin_interfaces/Time for ``seconds``."""
    from builtin_interfaces.msg import Time
    whole = int(seconds)
    return Time(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


def stamp_seconds(value: Any) -> float:
    return value.sec + value.nanosec * 1e-9

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
End-to-end benchmark of the image_segmenter node: latency, drops, rate, CPU and memory.

Each scenario starts the real node executable (Fast DDS on loopback, a domain of its own) with
both masks and the default number of inference threads, and streams real Megamind.avi frames to
it from this process at a fixed rate, each stamped with its send time. A frame's latency is the
arrival here of the last of its three masks (category, both confidences) minus its stamp; masks
are taken as serialized messages, so the figure holds no deserialization of this process. The
engine's ``segment()`` is timed in this process on the same frames just before and after each
scenario, and the node's latency is given as a multiple of it. An echo process that answers
with ready-made masks shows what rclpy and DDS alone cost. A rising-rate run finds the highest
VGA rate the node sustains without a drop. CPU and memory of the node come from /proc/<pid>.
``--profile`` samples the node with py-spy under the VGA VIDEO load and summarises where its
worker thread spends each frame.

By default this process and the nodes use config/fastdds_large_images.xml (a 16 MB
shared-memory segment); ``--no-dds-profile`` measures rmw_fastrtps' defaults instead.

    .venv/bin/python benchmarks/node_benchmark.py [--seconds 15] [--profile] [--quick]
        [--no-dds-profile] [--json FILE] [--output FILE]
"""

import argparse
import array
import collections
from dataclasses import asdict, dataclass
import importlib
import json
import os
from pathlib import Path
import signal
import struct
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_common import (DDS_PROFILE, machine_description, py_spy_prefix, py_spy_stacks,
                          real_frames, use_dds_profile)
import cv2
from diagnostic_msgs.msg import DiagnosticArray
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions, RunningMode
from image_segmenter_ros.engine import opencv_on_calling_thread
from image_segmenter_ros.node.parameters import BY_NAME
import numpy as np
from rclpy.qos import qos_profile_sensor_data, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACKAGE_ROOT / 'test'))
harness = importlib.import_module('ros_harness')  # the node tests' ROS graph, reused

MODEL = 'selfie_segmentation'
THREADS = BY_NAME['num_threads'].default  # the node's default
MASK_TOPICS = ('category_mask', 'confidence_masks/background', 'confidence_masks/selfie')
SIZES = {'VGA': (640, 480), '720p': (1280, 720)}
# The input: reliable on both sides (the README's advice for tests and bags), keep-last 10 at
# the publisher, the node's subscription overridden to reliable (its depth stays 5).
INPUT_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
OUTPUT_QOS = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
SEARCH_RATES = (30.0, 45.0, 60.0, 75.0, 90.0, 110.0, 130.0)
ENGINE_PACINGS = ('back to back', 'paced')

# Targets.
P50_VS_ENGINE = 1.5
P99_VS_ENGINE = 3.0
LIVE_720P_DROPS_PCT = 5.0
RSS_LIMIT_MB = 400.0


@dataclass(frozen=True)
class Scenario:
    """One stream into one node: size, running mode, rate, encoding and input reliability."""

    name: str
    size: str
    mode: str
    hz: float
    encoding: str = 'rgb8'
    reliable: bool = True
    # The node's input reliability, set by qos_overrides; None: it follows the publisher.
    subscription: Optional[str] = 'reliable'


SCENARIOS = (
    Scenario('VGA VIDEO 30 Hz', 'VGA', 'VIDEO', 30.0, 'rgb8'),
    # The floor under any Python node with these outputs: no engine, masks echoed at once.
    Scenario('VGA echo 30 Hz (transport only)', 'VGA', 'ECHO', 30.0, 'rgb8'),
    Scenario('VGA LIVE_STREAM 30 Hz', 'VGA', 'LIVE_STREAM', 30.0, 'bgr8'),
    Scenario('720p LIVE_STREAM 30 Hz', '720p', 'LIVE_STREAM', 30.0, 'bgr8'),
    Scenario('720p VIDEO 30 Hz', '720p', 'VIDEO', 30.0, 'rgb8'),
)
# What best effort loses inside DDS: the live streams with a best-effort input, as cameras send.
BEST_EFFORT = (
    Scenario('VGA LIVE_STREAM 30 Hz, best effort', 'VGA', 'LIVE_STREAM', 30.0, 'bgr8',
             reliable=False),
    Scenario('720p LIVE_STREAM 30 Hz, best effort', '720p', 'LIVE_STREAM', 30.0, 'bgr8',
             reliable=False),
)


# An rclpy process that answers each image with ready-made masks of its size at once, over the
# same topics, QoS and executor as the node: what DDS and rclpy cost without any segmentation.
ECHO_SOURCE = """
import sys
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image
topic, namespace, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rclpy.init()
node = rclpy.create_node('echo', namespace=namespace)
reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
publishers = [node.create_publisher(Image, name, reliable) for name in names]
masks = {}
def answer(msg):
    size = (msg.height, msg.width)
    if size not in masks:
        kinds = [('mono8', 1)] + [('32FC1', 4)] * (len(names) - 1)
        masks[size] = [Image(height=msg.height, width=msg.width, encoding=encoding,
                             step=msg.width * itemsize,
                             data=bytes(msg.width * msg.height * itemsize))
                       for encoding, itemsize in kinds]
    for publisher, out in zip(publishers, masks[size]):
        out.header = msg.header
        publisher.publish(out)
node.create_subscription(Image, topic, answer, reliable)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
"""


def image_messages(frames: List[np.ndarray], encoding: str) -> List[Image]:
    """Build the messages once, so publishing costs only the DDS write."""
    out = []
    for frame in frames:
        pixels = frame if encoding == 'rgb8' else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                    step=pixels.shape[1] * 3, data=array.array('B', pixels.tobytes()))
        msg.header.frame_id = 'camera'
        out.append(msg)
    return out


def percentiles(values: Sequence[float]) -> Dict[str, Optional[float]]:
    if not len(values):
        return {'p50': None, 'p95': None, 'p99': None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {'p50': float(p50), 'p95': float(p95), 'p99': float(p99)}


class ProcessMeter:
    """CPU time and memory of a process from /proc, as a share of one core over an interval."""

    TICKS = os.sysconf('SC_CLK_TCK')

    def __init__(self, pid: int):
        self.pid = pid
        self._start: Optional[Tuple[float, float]] = None

    def cpu_seconds(self) -> float:
        stat = Path('/proc/%d/stat' % self.pid).read_text()
        # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        rest = stat[stat.rindex(')') + 2:].split()
        return (int(rest[11]) + int(rest[12])) / self.TICKS

    def start(self) -> None:
        self._start = (time.monotonic(), self.cpu_seconds())

    def cpu_percent(self) -> float:
        wall, cpu = self._start
        return 100.0 * (self.cpu_seconds() - cpu) / (time.monotonic() - wall)

    def memory_mb(self) -> Dict[str, float]:
        values = {}
        for line in Path('/proc/%d/status' % self.pid).read_text().splitlines():
            key, _, value = line.partition(':')
            if key in ('VmRSS', 'VmHWM'):
                values[key] = int(value.split()[0]) / 1024.0
        return {'rss_mb': values['VmRSS'], 'peak_rss_mb': values['VmHWM']}


class MaskRecorder:
    """Arrival time of every mask by its frame's stamp, from serialized messages."""

    def __init__(self, probe: Any, namespace: str, topics: Sequence[str] = MASK_TOPICS):
        self._lock = threading.Lock()
        self.topics = tuple(topics)
        self.arrivals: Dict[int, List[float]] = collections.defaultdict(list)
        self.subscriptions = [
            probe.node.create_subscription(Image, '%s/%s' % (namespace, topic), self._record,
                                           OUTPUT_QOS, raw=True)
            for topic in self.topics]

    def _record(self, raw: bytes) -> None:
        now = time.time()
        # CDR: 4 bytes of encapsulation, then header.stamp (int32 sec, uint32 nanosec).
        sec, nanosec = struct.unpack_from('<iI' if raw[1] == 1 else '>iI', raw, 4)
        with self._lock:
            self.arrivals[sec * 1_000_000_000 + nanosec].append(now)

    def answered(self, stamps: Sequence[int]) -> Tuple[List[float], int, int]:
        """Latencies (ms) of frames with all masks, and counts of complete and partial ones."""
        latencies, partial = [], 0
        with self._lock:
            for stamp in stamps:
                got = self.arrivals.get(stamp, ())
                if len(got) >= len(self.topics):
                    latencies.append((max(got) - stamp * 1e-9) * 1000.0)
                elif got:
                    partial += 1
        return latencies, len(latencies), partial


class Publisher:
    """Sends prepared messages at a fixed rate, each stamped with its send time."""

    def __init__(self, publisher: Any, msgs: List[Image]):
        self.publisher = publisher
        self.msgs = msgs
        self.sent = 0
        self.last_send = 0.0

    def stream(self, seconds: float, hz: float) -> Tuple[List[int], float]:
        """Publish for ``seconds``; return the stamps (ns) sent and the achieved rate."""
        stamps = []
        # Keep the period across calls: two frames in one millisecond share a VIDEO timestamp.
        start = max(time.monotonic(), self.last_send + 1.0 / hz)
        count = int(round(seconds * hz))
        for index in range(count):
            delay = start + index / hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = self.msgs[self.sent % len(self.msgs)]
            now_ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            self.publisher.publish(msg)
            self.last_send = time.monotonic()
            stamps.append(now_ns)
            self.sent += 1
        return stamps, count / (time.monotonic() - start)


class CommandNode(harness.NodeProcess):
    """Another command than the node executable, started and stopped like it."""

    def __init__(self, command: Sequence[str], env: Dict[str, str], log_path: Path):
        self._start(command, env, log_path)


class ProfiledNode(CommandNode):
    """The node executable started by a profiler, whose output needs the node to exit first."""

    def node_pid(self) -> Optional[int]:
        """Return the node's pid: the profiler's child."""
        for task in Path('/proc/%d/task' % self.process.pid).iterdir():
            children = (task / 'children').read_text().split()
            if children:
                return int(children[0])
        return None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Signal the node itself; the profiler writes its output when the node has exited."""
        pid = self.node_pid()
        if pid is not None:
            os.kill(pid, sig)
        return super().stop(sig, timeout) if pid is None else self.wait(timeout)


class Bench:
    """The probe node of this process and the node processes it starts."""

    def __init__(self, log_dir: Path):
        self.env = harness.ros_environment(harness.domain_id('node_benchmark'))
        self.probe = harness.Probe(int(self.env['ROS_DOMAIN_ID']))
        self.probe.subscribe(DiagnosticArray, '/diagnostics')
        self.log_dir = log_dir
        self.count = 0

    def start(self, scenario: Scenario,
              prefix: Sequence[str] = ()) -> Tuple[Any, str, str, MaskRecorder, Publisher]:
        """Start a node for ``scenario`` and connect a publisher and the mask recorder."""
        self.count += 1
        namespace = '/node_bench_%d' % self.count
        topic = namespace + '/camera/image'
        arguments = ['-p', 'model:=' + MODEL, '-p', 'running_mode:=' + scenario.mode,
                     '-p', 'output_category_mask:=true', '-p', 'output_confidence_masks:=true',
                     '-p', 'num_threads:=%d' % THREADS, '-r', 'image:=' + topic,
                     '-r', '__ns:=' + namespace]
        if scenario.reliable and scenario.subscription and scenario.mode != 'ECHO':
            arguments += ['-p', 'qos_overrides.%s.subscription.reliability:=%s' % (
                topic, scenario.subscription)]
        log_path = self.log_dir / ('node_%d.log' % self.count)
        if scenario.mode == 'ECHO':
            node = CommandNode([sys.executable, '-c', ECHO_SOURCE, topic, namespace] +
                               list(MASK_TOPICS), self.env, log_path)
        elif prefix:
            node = ProfiledNode(list(prefix) + [harness.NODE_EXECUTABLE, '--ros-args'] +
                                arguments, self.env, log_path)
        else:
            node = harness.NodeProcess(arguments, self.env, log_path)
        recorder = MaskRecorder(self.probe, namespace)
        publisher = self.probe.node.create_publisher(
            Image, topic, INPUT_QOS if scenario.reliable else qos_profile_sensor_data)
        probe = self.probe.node
        harness.wait_until(
            lambda: publisher.get_subscription_count() >= 1 and all(
                probe.count_publishers('%s/%s' % (namespace, name)) >= 1 and
                probe.count_subscribers('%s/%s' % (namespace, name)) >= 1
                for name in MASK_TOPICS), 60.0,
            'the node to connect:\n%s' % log_path.read_text())
        frames = real_frames(*SIZES[scenario.size])
        return node, namespace, topic, recorder, Publisher(
            publisher, image_messages(frames, scenario.encoding))

    def diagnostics(self, namespace: str) -> Dict[str, str]:
        name = '%s/image_segmenter: segmentation' % namespace
        for msg in reversed(self.probe.messages('/diagnostics')):
            for status in msg.status:
                if status.name == name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def settled_diagnostics(self, namespace: str, timeout: float = 10.0) -> Dict[str, str]:
        """Wait until the node's counters account for what it received, then return them."""
        def settled():
            values = self.diagnostics(namespace)
            if not values:
                return None
            done = sum(int(values[key]) for key in (
                'frames processed', 'frames dropped', 'frames rejected',
                'frames failed (errors)', 'frames skipped (no subscribers)'))
            return values if done == int(values['frames received']) else None
        time.sleep(1.2)
        try:
            return harness.wait_until(settled, timeout, 'settled diagnostics')
        except AssertionError:
            return self.diagnostics(namespace)

    def close(self) -> None:
        self.probe.close()


class EngineTimer:
    """
    The engine in this process, timed on the node's frames right before and after a run.

    Twice: back to back, and called at the scenario's frame rate with the CPU idle in between,
    as the node calls it. On this machine the second is much slower (idle cores wake slowly,
    caches go cold): both are reported, so the node's own cost can be told from the machine's.
    """

    def __init__(self, frames_by_size: Dict[str, List[np.ndarray]]):
        opencv_on_calling_thread()  # as in the node
        self.frames = frames_by_size
        self.segmenter = ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=MODEL, running_mode=RunningMode.IMAGE, output_confidence_masks=True,
            output_category_mask=True, num_threads=THREADS))
        self.samples: Dict[str, Dict[str, List[float]]] = {
            pacing: {size: [] for size in frames_by_size} for pacing in ENGINE_PACINGS}
        for frames in frames_by_size.values():
            for frame in frames[:3]:
                self.segmenter.segment(frame)

    def time(self, size: str, hz: Optional[float] = None, repeats: int = 40) -> List[float]:
        """Time ``segment()`` (both masks), back to back or started at ``hz``; milliseconds."""
        frames = self.frames[size]
        times = []
        next_start = time.perf_counter()
        for index in range(repeats):
            if hz:
                time.sleep(max(0.0, next_start - time.perf_counter()))
                next_start += 1.0 / hz
            start = time.perf_counter()
            self.segmenter.segment(frames[index % len(frames)])
            times.append((time.perf_counter() - start) * 1000.0)
        self.samples['paced' if hz else 'back to back'][size] += times
        return times

    def summary(self) -> Dict[str, Dict[str, Dict[str, float]]]:
        return {pacing: {size: {'p50_ms': float(np.percentile(times, 50)),
                                'p99_ms': float(np.percentile(times, 99)),
                                'samples': len(times)}
                         for size, times in by_size.items() if times}
                for pacing, by_size in self.samples.items()}

    def close(self) -> None:
        self.segmenter.close()


def wait_for_answers(recorder: MaskRecorder, stamps: Sequence[int], timeout: float) -> None:
    """Give the masks of the last frames time to arrive; return early when all did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, complete, partial = recorder.answered(stamps)
        if complete + partial >= len(stamps):
            time.sleep(0.2)
            return
        time.sleep(0.05)


def summarise(recorder: MaskRecorder, stamps: List[int], rate: float,
              seconds: float) -> Dict[str, Any]:
    latencies, complete, partial = recorder.answered(stamps)
    third = max(1, len(latencies) // 3)
    first, last = latencies[:third], latencies[-third:]
    result = {'sent': len(stamps), 'send_hz': rate, 'answered': complete, 'partial': partial,
              'drops': len(stamps) - complete,
              'drops_pct': 100.0 * (len(stamps) - complete) / max(1, len(stamps)),
              'output_hz': complete / seconds,
              'latency_first_third_p50': percentiles(first)['p50'],
              'latency_last_third_p50': percentiles(last)['p50']}
    result.update({'latency_' + key: value for key, value in percentiles(latencies).items()})
    return result


def latency_grows(result: Dict[str, Any]) -> bool:
    """Whether the latency kept rising over a step: a queue filling up, not noise."""
    first, last = result['latency_first_third_p50'], result['latency_last_third_p50']
    return first is not None and last is not None and last > 2.0 * first + 10.0


def run_scenario(bench: Bench, scenario: Scenario, seconds: float, warm_up: float,
                 engine: EngineTimer) -> Dict[str, Any]:
    """Run one scenario on a fresh node, the engine timed just before and after; return figures."""
    engine_ms = engine.time(scenario.size)
    paced_ms = engine.time(scenario.size, scenario.hz, repeats=int(scenario.hz))
    node, namespace, _, recorder, publisher = bench.start(scenario)
    try:
        meter = ProcessMeter(node.process.pid)
        publisher.stream(warm_up, scenario.hz)
        meter.start()
        stamps, rate = publisher.stream(seconds, scenario.hz)
        cpu = meter.cpu_percent()
        wait_for_answers(recorder, stamps, 5.0)
        memory = meter.memory_mb()
        values = ({} if scenario.mode == 'ECHO' else bench.settled_diagnostics(namespace))
    finally:
        code = node.stop(signal.SIGINT)
    engine_ms += engine.time(scenario.size)
    paced_ms += engine.time(scenario.size, scenario.hz, repeats=int(scenario.hz))
    result = asdict(scenario)
    result.update(summarise(recorder, stamps, rate, seconds))
    for suffix, times in (('', engine_ms), ('_paced', paced_ms)):
        engine_p50 = float(np.percentile(times, 50))
        result['engine%s_p50_ms' % suffix] = engine_p50
        result['engine%s_p99_ms' % suffix] = float(np.percentile(times, 99))
        for key in ('p50', 'p95', 'p99'):
            value = result['latency_' + key]
            ratio = None if value is None else value / engine_p50
            result['%s_vs_engine%s' % (key, suffix)] = ratio
    result.update(memory)
    result.update({
        'cpu_pct': cpu, 'exit_code': code,
        'total_sent': publisher.sent,
        'node_received': int(values.get('frames received', publisher.sent)),
        'node_processed': int(values.get('frames processed', -1)),
        'node_dropped': int(values.get('frames dropped', -1)),
        'node_processing_p50_ms': float(values.get('processing time p50 (ms)', 'nan')),
        'node_latency_p50_ms': float(values.get('latency p50 (ms)', 'nan')),
    })
    return result


def search_rate(bench: Bench, seconds: float, warm_up: float,
                rates: Sequence[float] = SEARCH_RATES) -> Dict[str, Any]:
    """Raise the VGA VIDEO rate on one node until frames drop or latency keeps growing."""
    scenario = Scenario('VGA VIDEO rate search', 'VGA', 'VIDEO', rates[0], 'rgb8')
    node, namespace, _, recorder, publisher = bench.start(scenario)
    steps, sustained = [], None
    try:
        meter = ProcessMeter(node.process.pid)
        publisher.stream(warm_up, rates[0])
        for hz in rates:
            publisher.stream(1.0, hz)  # let the queue settle at the new rate
            meter.start()
            stamps, rate = publisher.stream(seconds, hz)
            cpu = meter.cpu_percent()
            wait_for_answers(recorder, stamps, 3.0)
            step = summarise(recorder, stamps, rate, seconds)
            step.update({'hz': hz, 'cpu_pct': cpu, 'grows': latency_grows(step),
                         'publisher_bound': rate < 0.95 * hz})
            step['ok'] = step['drops'] == 0 and not step['grows']
            steps.append(step)
            if not step['ok'] or step['publisher_bound']:
                break
            sustained = hz
            time.sleep(1.0)  # drain before the next step
    finally:
        code = node.stop(signal.SIGINT)
    return {'steps': steps, 'max_sustained_hz': sustained, 'exit_code': code,
            'limited_by_publisher': bool(steps and steps[-1]['publisher_bound'] and
                                         steps[-1]['ok'])}


def profile_node(bench: Bench, seconds: float, warm_up: float, out_dir: Path,
                 rate: int = 250) -> Dict[str, Any]:
    """Sample the node under the VGA VIDEO 30 Hz load with py-spy; summarise its worker."""
    raw_path = out_dir / 'node_profile.txt'
    prefix = py_spy_prefix(raw_path, rate)
    if prefix is None:
        return {'error': 'py-spy is not installed (pip install py-spy)'}
    scenario = SCENARIOS[0]
    node, _, _, recorder, publisher = bench.start(scenario, prefix)
    try:
        publisher.stream(warm_up, scenario.hz)
        stamps, _ = publisher.stream(seconds, scenario.hz)
        wait_for_answers(recorder, stamps, 3.0)
    finally:
        node.stop(signal.SIGINT, timeout=30.0)
    if not raw_path.exists():
        return {'error': 'py-spy wrote no profile:\n%s' % node.log_path.read_text()[-2000:]}
    # Frames of the warm-up too: the profile covers the whole run.
    summary = summarise_profile(raw_path.read_text(), rate, publisher.sent)
    summary['frames'] = publisher.sent
    summary['raw_profile'] = str(raw_path)
    return summary


# Where a worker sample goes, first match wins: (category, function name fragments).
PROFILE_CATEGORIES = (
    ('engine: segment()', ('ImageSegmenter.segment', 'ImageSegmenter._segment')),
    ('publish: rclpy and the DDS write', ('Publisher.publish',)),
    ('output messages: the masks as CDR bytes', ('output_messages.py:',)),
    ('input decoding (message_to_array)', ('message_to_array',)),
    ('NaN check of the confidence masks', ('_process.<locals>.<genexpr>',)),
    ('waiting for a frame', ('_FrameQueue.get',)),
)


def summarise_profile(text: str, rate: int = 250, frames: int = 0,
                      top: int = 15) -> Dict[str, Any]:
    """Per-frame time of the worker thread by kind of work, and its top functions."""
    inclusive: Dict[str, int] = collections.Counter()
    own: Dict[str, int] = collections.Counter()
    categories: Dict[str, int] = collections.Counter()
    total = 0
    for _, frames_of_stack, count in py_spy_stacks(text):
        if 'image_segmenter_node.py:SegmenterCore._work' not in frames_of_stack:
            continue
        total += count
        for name in set(frames_of_stack):
            inclusive[name] += count
        own[frames_of_stack[-1]] += count
        categories[next((category for category, parts in PROFILE_CATEGORIES
                         if any(part in name for part in parts for name in frames_of_stack)),
                        'other (node code, clock, statistics)')] += count
    share = (lambda n: 100.0 * n / total) if total else (lambda n: 0.0)
    per_frame = (lambda n: 1000.0 * n / rate / frames) if frames else (lambda n: 0.0)
    return {'worker_samples': total, 'rate_hz': rate,
            'categories': [(name, share(n), per_frame(n)) for name, n in
                           categories.most_common()],
            'inclusive': [(name, share(n)) for name, n in inclusive.most_common(top * 2)],
            'own': [(name, share(n)) for name, n in own.most_common(top)]}


def measure(seconds: float = 15.0, warm_up: float = 3.0, search_seconds: float = 6.0,
            profile: bool = False, best_effort: bool = True, log_dir: Optional[Path] = None,
            scenarios: Optional[Sequence[str]] = None, search: bool = True,
            dds_profile: Optional[Path] = DDS_PROFILE, quick: bool = False) -> Dict[str, Any]:
    """
    Run the scenarios, the rate search and the engine timing; return JSON-able results.

    ``scenarios`` picks scenarios by name (default: all); ``dds_profile`` is the Fast DDS XML
    profile of this process and the nodes (None: rmw_fastrtps' defaults). This process reads
    it only if it has not started rclpy before (see use_dds_profile). ``quick``: a smoke run
    of a few seconds per scenario and a two-step rate search. The nodes' logs and the raw
    profile are kept in ``log_dir`` if one is given, else deleted.
    """
    rates = SEARCH_RATES
    if quick:
        seconds, warm_up, search_seconds, rates = 3.0, 1.0, 3.0, SEARCH_RATES[:2]
    temporary = None if log_dir else tempfile.TemporaryDirectory(prefix='node_benchmark_')
    log_dir = Path(log_dir or temporary.name)
    use_dds_profile(dds_profile)
    chosen = [item for item in SCENARIOS + (BEST_EFFORT if best_effort else ())
              if scenarios is None or item.name in scenarios]
    engine = EngineTimer({size: real_frames(*wh) for size, wh in SIZES.items()})
    bench = Bench(log_dir)
    results: Dict[str, Any] = {
        'machine': machine_description(),
        'seconds': seconds, 'warm_up': warm_up,
        'qos': 'input reliable (publisher keep-last 10, node subscription overridden to '
               'reliable, depth 5); outputs reliable (node depth 5, subscriber depth 50)',
        'dds_profile': os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE'),
        'scenarios': [], 'log_dir': None if temporary else str(log_dir)}
    try:
        for scenario in chosen:
            results['scenarios'].append(run_scenario(bench, scenario, seconds, warm_up,
                                                     engine))
        if search:
            results['rate_search'] = search_rate(bench, search_seconds, warm_up, rates)
        if profile:
            results['profile'] = profile_node(bench, seconds, warm_up, log_dir)
    finally:
        bench.close()
        engine.close()
        if temporary:
            temporary.cleanup()
            results.get('profile', {}).pop('raw_profile', None)
    results['engine'] = engine.summary()
    results['targets'] = targets(results)
    return results


def targets(results: Dict[str, Any]) -> List[Tuple[str, str, bool]]:
    """Check the node's targets on one run (those whose scenario ran): (target, measured, met)."""
    by_name = {item['name']: item for item in results['scenarios']}
    out = []

    def ratio(value: Optional[float]) -> float:
        return float('inf') if value is None else value

    video = by_name.get('VGA VIDEO 30 Hz')
    if video:
        for suffix, engine in (('_paced', 'the engine called at the same rate'),
                               ('', 'the engine called back to back')):
            for key, limit in (('p50', P50_VS_ENGINE), ('p99', P99_VS_ENGINE)):
                value = ratio(video['%s_vs_engine%s' % (key, suffix)])
                out.append(('node VGA VIDEO 30 Hz: latency %s <= %.1fx %s' % (key, limit, engine),
                            '%.2fx' % value, value <= limit))
        out.append(('node VGA VIDEO 30 Hz: no frame dropped',
                    '%d of %d dropped' % (video['drops'], video['sent']), video['drops'] == 0))
    live720 = by_name.get('720p LIVE_STREAM 30 Hz')
    if live720:
        out.append(('node 720p LIVE_STREAM 30 Hz: under %.0f %% dropped' % LIVE_720P_DROPS_PCT,
                    '%.1f %%' % live720['drops_pct'],
                    live720['drops_pct'] < LIVE_720P_DROPS_PCT))
    nodes = [item for item in by_name.values() if item['mode'] != 'ECHO']
    if nodes:
        peak_rss = max(item['peak_rss_mb'] for item in nodes)
        out.append(('node RSS under %.0f MB' % RSS_LIMIT_MB, 'peak %.0f MB' % peak_rss,
                    peak_rss < RSS_LIMIT_MB))
    return out


def plot_latency(results: Dict[str, Any], axes: Any) -> None:
    """Draw each scenario's latency p50/p95/p99 as bars, its engine p50 as a line, on ``axes``."""
    scenarios = results['scenarios']
    width = 0.25
    for offset, key in enumerate(('p50', 'p95', 'p99')):
        axes.bar([index + offset * width for index in range(len(scenarios))],
                 [item['latency_' + key] or 0.0 for item in scenarios], width,
                 label='latency ' + key)
    for index, item in enumerate(scenarios):
        for key, style, label in (('engine_p50_ms', 'solid', 'back to back'),
                                  ('engine_paced_p50_ms', 'dashed', 'at the same rate')):
            axes.hlines(item[key], index - width / 2, index + 2.5 * width, colors='black',
                        linestyles=style,
                        label='engine segment() p50, %s' % label if index == 0 else None)
    axes.set_xticks([index + width for index in range(len(scenarios))])
    axes.set_xticklabels([item['name'].replace(' 30 Hz', '\n30 Hz') for item in scenarios],
                         fontsize=7, rotation=30, ha='right')
    axes.set_ylabel('milliseconds, frame sent to last mask received')
    axes.set_title('Node over DDS, both masks')
    axes.legend(fontsize=8)


def _ms(value: Optional[float]) -> str:
    return 'n/a' if value is None else '%.1f' % value


def _x(value: Optional[float]) -> str:
    return 'n/a' if value is None else '%.2fx' % value


def markdown(results: Dict[str, Any]) -> str:
    """Render the results as markdown tables and the profile summary."""
    engine = results['engine']
    lines = [
        '- Fast DDS profile: %s' % (results.get('dds_profile') or
                                    "none (rmw_fastrtps' defaults)"),
        '- %.0f s per scenario after a %.0f s warm-up; %s, %d inference threads, both masks '
        '(3 topics); QoS: %s' % (results['seconds'], results['warm_up'], MODEL, THREADS,
                                 results['qos']), '',
        "Latency: arrival of a frame's last mask in the benchmark process minus its header "
        'stamp (its send time). Drops: frames sent in the measured interval without all three '
        'masks. CPU: node process, % of one core. Engine: `segment()` on the same frames in '
        'the benchmark process, just before and after the scenario, called back to back (b2b) '
        "and called at the scenario's rate (paced), as the node calls it; ratios are latency "
        'over engine p50. The echo scenario replaces the node by a process that answers with '
        'ready-made masks (no engine): the floor that rclpy and DDS set.', '',
        '| scenario | input | sent | answered | drops | out rate | p50 | p95 | p99 '
        '| engine p50 b2b / paced | p50/engine b2b / paced | p99/engine b2b / paced '
        '| node CPU | RSS (peak) |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for item in results['scenarios']:
        lines.append(
            '| %s | %s %s, %s | %d | %d | %d (%.1f %%) | %.1f Hz | %s ms | %s ms | %s ms '
            '| %.2f / %.2f ms | %s / %s | %s / %s | %.0f %% | %.0f (%.0f) MB |' % (
                item['name'], item['size'], item['encoding'],
                'reliable' if item['reliable'] else 'best effort', item['sent'],
                item['answered'], item['drops'], item['drops_pct'], item['output_hz'],
                _ms(item['latency_p50']), _ms(item['latency_p95']), _ms(item['latency_p99']),
                item['engine_p50_ms'], item['engine_paced_p50_ms'],
                _x(item['p50_vs_engine']), _x(item['p50_vs_engine_paced']),
                _x(item['p99_vs_engine']), _x(item['p99_vs_engine_paced']),
                item['cpu_pct'], item['rss_mb'], item['peak_rss_mb']))
    lines += ['', 'Node counters over the whole run (warm-up included): received of sent, '
              'dropped by the node (LIVE_STREAM: stale frames, by design):', '']
    for item in results['scenarios']:
        if item['mode'] == 'ECHO':
            continue
        lines.append('- %s: %d of %d received (%d lost before the node), %d dropped by the '
                     'node; in the node, processing p50 %.1f ms, stamp to published p50 '
                     '%.1f ms' % (
                         item['name'], item['node_received'], item['total_sent'],
                         item['total_sent'] - item['node_received'], item['node_dropped'],
                         item['node_processing_p50_ms'], item['node_latency_p50_ms']))
    lines += ['', 'Engine `segment()` in the benchmark process (both masks, %d threads), timed '
              'just before and after each scenario, all samples:' % THREADS, '',
              '| called | frame | p50 | p99 | samples |', '|---|---|---:|---:|---:|']
    for pacing, by_size in engine.items():
        for size, values in by_size.items():
            lines.append('| %s | %s | %.2f ms | %.2f ms | %d |' % (
                pacing, size, values['p50_ms'], values['p99_ms'], values['samples']))
    search = results.get('rate_search')
    if search:
        lines += ['', 'Maximum sustained rate, VGA VIDEO (one node, rising rate; a step passes '
                  'with zero drops and no growing latency):', '',
                  '| rate | sent at | answered | drops | p50 | p99 | first/last third p50 '
                  '| node CPU | passed |', '|---:|---:|---:|---:|---:|---:|---:|---:|---|']
        for step in search['steps']:
            lines.append('| %.0f Hz | %.1f Hz | %d | %d | %s ms | %s ms | %s / %s ms | %.0f %% '
                         '| %s |' % (
                             step['hz'], step['send_hz'], step['answered'], step['drops'],
                             _ms(step['latency_p50']), _ms(step['latency_p99']),
                             _ms(step['latency_first_third_p50']),
                             _ms(step['latency_last_third_p50']), step['cpu_pct'],
                             'yes' if step['ok'] else 'no'))
        lines += ['', 'Highest rate sustained without drops: %s%s.' % (
            'none' if search['max_sustained_hz'] is None else
            '%.0f Hz' % search['max_sustained_hz'],
            ' (the publisher could not send faster)' if search['limited_by_publisher']
            else ' (the highest rate tried)' if search['max_sustained_hz'] == max(
                step['hz'] for step in search['steps']) else '')]
    profile = results.get('profile')
    if profile:
        lines += ['', '### Profile of the node (VGA VIDEO 30 Hz, py-spy)', '']
        if 'error' in profile:
            lines.append(profile['error'])
        else:
            lines += ["The node's worker thread, %d samples at %d Hz over %d frames (py-spy "
                      'slows the node a little): time per frame by kind of work, then the '
                      'top functions, inclusive and own time.' % (
                          profile['worker_samples'], profile['rate_hz'], profile['frames']), '',
                      '| work | share | per frame |', '|---|---:|---:|']
            lines += ['| %s | %.1f %% | %.2f ms |' % tuple(item)
                      for item in profile['categories']]
            lines += ['', '| function | inclusive |', '|---|---:|']
            lines += ['| `%s` | %.1f %% |' % tuple(item) for item in profile['inclusive']]
            lines += ['', '| function | own |', '|---|---:|']
            lines += ['| `%s` | %.1f %% |' % tuple(item) for item in profile['own']]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--seconds', type=float, default=15.0, help='per scenario')
    parser.add_argument('--warm-up', type=float, default=3.0)
    parser.add_argument('--search-seconds', type=float, default=6.0, help='per rate step')
    parser.add_argument('--profile', action='store_true', help='py-spy the node (VGA VIDEO)')
    parser.add_argument('--quick', action='store_true', help='a smoke run of a minute')
    parser.add_argument('--no-best-effort', action='store_true',
                        help='skip the best-effort VGA scenario')
    parser.add_argument('--scenario', action='append', help='run only this scenario (repeatable)')
    parser.add_argument('--no-search', action='store_true', help='skip the rate search')
    parser.add_argument('--dds-profile', type=Path, default=DDS_PROFILE,
                        help='Fast DDS XML profile for this process and the nodes '
                        '(default: %(default)s)')
    parser.add_argument('--no-dds-profile', action='store_const', const=None,
                        dest='dds_profile', help="rmw_fastrtps' defaults")
    parser.add_argument('--json', type=Path, help='also write the results as JSON here')
    parser.add_argument('--output', type=Path, help='also write the markdown here')
    parser.add_argument('--log-dir', type=Path,
                        help="keep the nodes' logs and the raw profile here")
    args = parser.parse_args(argv)
    results = measure(args.seconds, args.warm_up, args.search_seconds, args.profile,
                      not args.no_best_effort, scenarios=args.scenario,
                      search=not args.no_search, dds_profile=args.dds_profile,
                      quick=args.quick, log_dir=args.log_dir)
    text = '\n'.join(['- %s' % line for line in results['machine']] + [markdown(results), '']
                     + ['| target | measured | met |', '|---|---|---|']
                     + ['| %s | %s | %s |' % (target, value, 'met' if met else 'NOT met')
                        for target, value, met in results['targets']])
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

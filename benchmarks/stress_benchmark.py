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
Stress benchmark of the image_segmenter node: burst, sustained rate, VIDEO, soak, two cameras.

Each scenario starts the real node executable (over Fast DDS on loopback, a domain of its
own) and feeds it real Megamind.avi frames from this process. Latency is the time from a
frame's header stamp (set just before publishing) to the arrival of its category mask here.
Memory, threads and file descriptors are read from /proc/<pid> of the node. Prints a markdown
table, writes it to docs/reliability.md (or ``--output``) and exits 1 if a check failed.

    .venv/bin/python benchmarks/stress_benchmark.py [--quick]
"""

import argparse
import datetime
import importlib
import os
from pathlib import Path
import platform
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench_common import DDS_PROFILE, real_frames, use_dds_profile
from diagnostic_msgs.msg import DiagnosticArray
from node_benchmark import image_messages
import numpy as np
from rcl_interfaces.srv import GetParameters
from rclpy.qos import qos_profile_sensor_data, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACKAGE_ROOT / 'test'))
harness = importlib.import_module('ros_harness')  # the node tests' ROS graph, reused

MODEL = 'selfie_segmentation'
RELIABLE = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
RSS_GROWTH_LIMIT = 0.05
BURST_LATENCY_LIMIT_MS = 500.0

# Scenario sizes: (full run, --quick).
SIZES = {
    'burst_frames': (1000, 200),
    'sustained_sec': (60.0, 5.0),
    'video_frames': (600, 60),
    'video_hz': (15.0, 15.0),
    'soak_frames': (20000, 2000),
    'soak_hz': (150.0, 150.0),
    'two_cameras_sec': (30.0, 5.0),
    'two_cameras_hz': (30.0, 30.0),
}


def proc_status(pid: int) -> Dict[str, int]:
    """RSS and peak RSS (kB), threads and open file descriptors of a process."""
    fields = {}
    for line in Path('/proc/%d/status' % pid).read_text().splitlines():
        key, _, value = line.partition(':')
        if key in ('VmRSS', 'VmHWM', 'Threads'):
            fields[key] = int(value.split()[0])
    fields['fds'] = len(os.listdir('/proc/%d/fd' % pid))
    return fields


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float('nan')


class Bench:
    """The probe node, node processes and the mask recorders of one benchmark run."""

    def __init__(self, log_dir: Path):
        self.env = harness.ros_environment(harness.domain_id('stress_benchmark'))
        self.probe = harness.Probe(int(self.env['ROS_DOMAIN_ID']))
        self.probe.subscribe(DiagnosticArray, '/diagnostics')
        self.log_dir = log_dir
        self._lock = threading.Lock()

    def start_node(self, namespace: str, topic: str, extra: Sequence[str] = (),
                   reliable: bool = False) -> harness.NodeProcess:
        """Start a node; ``reliable``: a reliable input, like a camera driver's default."""
        if reliable:
            extra = list(extra) + [
                '-p', 'qos_overrides.%s.subscription.reliability:=reliable' % topic]
        arguments = ['--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=' + topic,
                     '-r', '__ns:=' + namespace] + list(extra)
        return harness.NodeProcess(arguments, self.env,
                                   self.log_dir / ('%s.log' % namespace.strip('/')))

    def record_masks(self, namespace: str) -> List[Tuple[float, float]]:
        """Record (stamp, arrival) of every category mask, never keeping the masks."""
        records: List[Tuple[float, float]] = []

        def record(msg: Image) -> None:
            records.append((harness.stamp_seconds(msg.header.stamp), time.time()))
        self.probe.node.create_subscription(Image, namespace + '/category_mask', record,
                                            RELIABLE)
        # A confidence subscriber too, so the node does its usual work.
        self.probe.node.create_subscription(Image, namespace + '/confidence_masks/selfie',
                                            lambda msg: None, RELIABLE)
        return records

    def connect(self, namespace: str, topic: str, qos: Any,
                process: harness.NodeProcess) -> Any:
        publisher = self.probe.node.create_publisher(Image, topic, qos)
        node = self.probe.node
        harness.wait_until(
            lambda: publisher.get_subscription_count() >= 1 and
            node.count_publishers(namespace + '/category_mask') >= 1 and
            node.count_subscribers(namespace + '/category_mask') >= 1, 30.0,
            'the node %s to connect:\n%s' % (namespace, process.log))
        time.sleep(1.0)
        return publisher

    def diagnostics(self, namespace: str) -> Dict[str, str]:
        name = '%s/image_segmenter: segmentation' % namespace
        for msg in reversed(self.probe.messages('/diagnostics')):
            for status in msg.status:
                if status.name == name:
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def settled_diagnostics(self, namespace: str) -> Dict[str, str]:
        """Wait until the node's counters account for what it received, then return them."""
        def settled():
            values = self.diagnostics(namespace)
            if not values:
                return None
            done = sum(int(values[key]) for key in (
                'frames processed', 'frames dropped', 'frames rejected',
                'frames failed (errors)', 'frames skipped (no subscribers)'))
            return values if done == int(values['frames received']) and done else None
        time.sleep(2.0)
        return harness.wait_until(settled, 30.0, 'the diagnostics of %s to settle' % namespace)

    def close(self) -> None:
        self.probe.close()


def stream(publisher: Any, msgs: List[Image], count: int, hz: Optional[float],
           on_frame: Callable[[int], None] = lambda index: None) -> float:
    """Publish ``count`` frames at ``hz`` (None: as fast as possible); return the rate."""
    start = time.monotonic()
    for index in range(count):
        if hz:
            delay = start + index / hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        msg = msgs[index % len(msgs)]
        msg.header.stamp = harness.stamp(time.time())
        publisher.publish(msg)
        on_frame(index)
    return count / (time.monotonic() - start)


def latency_ms(records: List[Tuple[float, float]]) -> List[float]:
    return [(arrival - sent) * 1000.0 for sent, arrival in records]


def stop(process: harness.NodeProcess) -> Tuple[int, float]:
    """SIGINT the node; return its exit code and how long it took."""
    start = time.monotonic()
    code = process.stop(signal.SIGINT)
    return code, time.monotonic() - start


def burst(bench: Bench, count: int) -> Dict[str, Any]:
    namespace, topic = '/burst', '/stress/burst'
    process = bench.start_node(namespace, topic)
    records = bench.record_masks(namespace)
    publisher = bench.connect(namespace, topic, qos_profile_sensor_data, process)
    before = proc_status(process.process.pid)
    answers: List[float] = []
    done = threading.Event()

    def ask():  # the parameter service must answer during the burst
        while not done.is_set():
            start = time.monotonic()
            bench.probe.call(GetParameters, namespace + '/image_segmenter/get_parameters',
                             GetParameters.Request(names=['running_mode']), timeout=10.0)
            answers.append(time.monotonic() - start)
    asker = threading.Thread(target=ask)
    asker.start()
    rate = stream(publisher, image_messages(real_frames(640, 480), 'rgb8'), count, None)
    time.sleep(2.0)
    done.set()
    asker.join()
    after = proc_status(process.process.pid)
    values = bench.settled_diagnostics(namespace)
    code, exit_sec = stop(process)
    lat = latency_ms(records)
    ok = (code == 0 and answers and max(answers) < 5.0 and len(records) > 0 and
          percentile(lat, 99) < BURST_LATENCY_LIMIT_MS)
    return {'scenario': 'burst: %d VGA frames, as fast as possible (LIVE_STREAM)' % count,
            'figures': '%.0f fps sent, %s received, %d processed, %s dropped; latency p50 %.0f '
                       'ms, p99 %.0f ms; parameter service answered %d times, slowest %.0f '
                       'ms; RSS %.0f -> %.0f MB (peak %.0f MB)' % (
                           rate, values['frames received'], len(records),
                           values['frames dropped'], percentile(lat, 50), percentile(lat, 99),
                           len(answers), 1000 * max(answers or [0]), before['VmRSS'] / 1024,
                           after['VmRSS'] / 1024, after['VmHWM'] / 1024),
            'ok': ok}


def sustained(bench: Bench, seconds: float) -> Dict[str, Any]:
    namespace, topic = '/sustained', '/stress/sustained'
    process = bench.start_node(namespace, topic, reliable=True)
    records = bench.record_masks(namespace)
    publisher = bench.connect(namespace, topic, RELIABLE, process)
    count = int(60 * seconds)
    rate = stream(publisher, image_messages(real_frames(1280, 720), 'rgb8'), count, 60.0)
    values = bench.settled_diagnostics(namespace)
    code, _ = stop(process)
    lat = latency_ms(records)
    received = int(values['frames received'])
    return {'scenario': '1280x720 at 60 Hz for %.0f s (LIVE_STREAM, reliable input)' % seconds,
            'figures': '%d sent at %.1f Hz, %d received (%d overflowed the keep-last DDS '
                       'queue before the node took them), %d processed (%.1f Hz), %s dropped '
                       'as stale; latency p50 %.0f ms, p90 %.0f ms, '
                       'p99 %.0f ms, max %.0f ms' % (
                           count, rate, received, count - received, len(records),
                           len(records) / seconds, values['frames dropped'],
                           percentile(lat, 50), percentile(lat, 90), percentile(lat, 99),
                           max(lat or [float('nan')])),
            'ok': code == 0 and len(records) > 0 and int(values['frames processed']) +
            int(values['frames dropped']) == received}


def video(bench: Bench, count: int, hz: float) -> Dict[str, Any]:
    namespace, topic = '/video', '/stress/video'
    process = bench.start_node(namespace, topic, [
        '-p', 'running_mode:=VIDEO', '-p', 'queue_size:=100'], reliable=True)
    records = bench.record_masks(namespace)
    publisher = bench.connect(namespace, topic, RELIABLE, process)
    rate = stream(publisher, image_messages(real_frames(640, 480), 'rgb8'), count, hz)
    deadline = time.monotonic() + 60.0
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    values = bench.settled_diagnostics(namespace)
    code, _ = stop(process)
    stamps = [sent for sent, _ in records]
    lost = count - len(set(stamps))
    lat = latency_ms(records)
    return {'scenario': 'VIDEO mode, VGA at %.0f Hz, %d frames, reliable' % (hz, count),
            'figures': '%d sent at %.1f Hz, %s received, %d outputs, %d lost, %s dropped, '
                       '%s rejected; in order: %s; latency p50 %.0f ms, p99 %.0f ms' % (
                           count, rate, values['frames received'], len(records), lost,
                           values['frames dropped'],
                           values['frames rejected'], stamps == sorted(stamps),
                           percentile(lat, 50), percentile(lat, 99)),
            'ok': code == 0 and lost == 0 and len(records) == count and
            values['frames dropped'] == '0' and stamps == sorted(stamps)}


def soak(bench: Bench, count: int, hz: float) -> Dict[str, Any]:
    namespace, topic = '/soak', '/stress/soak'
    process = bench.start_node(namespace, topic)
    records = bench.record_masks(namespace)
    publisher = bench.connect(namespace, topic, qos_profile_sensor_data, process)
    warm_up = count // 10
    samples: Dict[str, Dict[str, int]] = {}

    def sample(index: int) -> None:
        if index + 1 == warm_up:
            samples['warm'] = proc_status(process.process.pid)
    rate = stream(publisher, image_messages(real_frames(320, 240), 'rgb8'), count, hz, sample)
    time.sleep(2.0)
    samples['end'] = proc_status(process.process.pid)
    values = bench.settled_diagnostics(namespace)
    code, _ = stop(process)
    warm, end = samples['warm'], samples['end']
    growth = end['VmRSS'] / warm['VmRSS'] - 1.0
    ok = (code == 0 and growth < RSS_GROWTH_LIMIT and end['Threads'] == warm['Threads'] and
          end['fds'] == warm['fds'])
    return {'scenario': 'soak: %d QVGA frames at %.0f Hz (LIVE_STREAM)' % (count, hz),
            'figures': '%d sent at %.0f Hz, %s received, %d processed; RSS after warm-up '
                       '(%d frames) %.1f MB -> %.1f MB at the end (%+.1f %%); threads %d -> %d; '
                       'fds %d -> %d' % (
                           count, rate, values['frames received'], len(records), warm_up,
                           warm['VmRSS'] / 1024, end['VmRSS'] / 1024, 100 * growth,
                           warm['Threads'], end['Threads'], warm['fds'], end['fds']),
            'ok': ok}


def two_cameras(bench: Bench, seconds: float, hz: float) -> Dict[str, Any]:
    nodes = []
    for name in ('/left', '/right'):
        topic = '/stress%s/image_raw' % name
        process = bench.start_node(name, topic, reliable=True)
        nodes.append((name, process, bench.record_masks(name), topic))
    publishers = [bench.connect(name, topic, RELIABLE, process)
                  for name, process, _, topic in nodes]
    msgs = image_messages(real_frames(640, 480), 'rgb8')
    count = int(hz * seconds)
    threads = [threading.Thread(target=stream, args=(publisher, msgs, count, hz))
               for publisher in publishers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.0)
    figures, ok = [], True
    for name, process, records, _ in nodes:
        values = bench.settled_diagnostics(name)
        figures.append('%s: %.1f Hz out, %s of %d frames received, %s dropped as stale' % (
            name, len(records) / seconds, values['frames received'], count,
            values['frames dropped']))
        ok = ok and stop(process)[0] == 0 and len(records) >= 0.9 * count
    return {'scenario': 'two nodes, two VGA cameras at %.0f Hz each for %.0f s, reliable '
                        'input' % (hz, seconds),
            'figures': '; '.join(figures), 'ok': ok}


def machine() -> str:
    cpu = next((line.split(':', 1)[1].strip() for line in
                Path('/proc/cpuinfo').read_text().splitlines()
                if line.startswith('model name')), platform.processor())
    return '%s, %d cores, %s, Python %s' % (cpu, os.cpu_count(), platform.platform(),
                                            platform.python_version())


def report(rows: List[Dict[str, Any]], quick: bool, seconds: float) -> str:
    profile = os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')
    transport = ('the profile config/%s' % Path(profile).name if profile
                 else "rmw_fastrtps' default transports")
    lines = ['# Reliability: stress benchmark', '',
             '`%s` on %s (%s; %.0f s), model `%s`, 2 inference threads, real Megamind.avi '
             'frames, Fast DDS on loopback with %s. The machine is shared with other work: '
             'rates and latencies are what this run saw, not limits.' % (
                 'make stress' if not quick else 'benchmarks/stress_benchmark.py --quick',
                 datetime.date.today().isoformat(), machine(), seconds, MODEL, transport), '',
             '| scenario | figures | check |', '|---|---|---|']
    lines += ['| %s | %s | %s |' % (row['scenario'], row['figures'],
                                    'pass' if row['ok'] else 'FAIL') for row in rows]
    lines += ['', 'Checks: burst: the node exits cleanly, its parameter service answers within '
              '5 s throughout and p99 latency of processed frames stays under %.0f ms; '
              'sustained: every received frame is processed or dropped as stale, none vanish; '
              'VIDEO: outputs == inputs, in order, none dropped; soak: RSS grows less than '
              '%.0f %% after warm-up, thread and fd counts unchanged; two cameras: each node '
              'outputs at least 90 %% of its input rate.' % (
                  BURST_LATENCY_LIMIT_MS, 100 * RSS_GROWTH_LIMIT), '']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='a short smoke run')
    parser.add_argument('--output', type=Path,
                        default=PACKAGE_ROOT / 'docs' / 'reliability.md')
    parser.add_argument('--dds-profile', type=Path, default=DDS_PROFILE,
                        help='Fast DDS XML profile for this process and the nodes '
                        '(default: %(default)s)')
    parser.add_argument('--no-dds-profile', action='store_const', const=None,
                        dest='dds_profile', help="rmw_fastrtps' defaults")
    args = parser.parse_args(argv)
    use_dds_profile(args.dds_profile)
    size = {name: value[1 if args.quick else 0] for name, value in SIZES.items()}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='stress_') as log_dir:
        bench = Bench(Path(log_dir))
        try:
            rows = []
            for name, scenario in (
                    ('burst', lambda: burst(bench, size['burst_frames'])),
                    ('sustained', lambda: sustained(bench, size['sustained_sec'])),
                    ('video', lambda: video(bench, size['video_frames'], size['video_hz'])),
                    ('soak', lambda: soak(bench, size['soak_frames'], size['soak_hz'])),
                    ('two cameras', lambda: two_cameras(bench, size['two_cameras_sec'],
                                                        size['two_cameras_hz']))):
                try:
                    rows.append(scenario())
                except AssertionError as error:  # a node that never answered: report, go on
                    rows.append({'scenario': name, 'ok': False,
                                 'figures': str(error).splitlines()[0]})
                print('| %s | %s | %s |' % (rows[-1]['scenario'], rows[-1]['figures'],
                                            'pass' if rows[-1]['ok'] else 'FAIL'), flush=True)
        finally:
            bench.close()
    text = report(rows, args.quick, time.monotonic() - start)
    print('\n' + text)
    args.output.write_text(text)
    return 0 if all(row['ok'] for row in rows) else 1


if __name__ == '__main__':
    sys.exit(main())

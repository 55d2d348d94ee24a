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
Our node against the baseline node a user writes in an afternoon (baseline_afternoon_node.py).

Same frames (real Megamind.avi, bgr8, as cameras send), same rate (30 Hz), same DDS set-up (the
large-image Fast DDS profile for every process, a reliable publisher, each node's subscription
best effort with sensor-data QoS), same outputs (the category mask and the confidence masks
MediaPipe gives: for a one-channel model its foreground mask only, so our node computes no
background mask), both in LIVE_STREAM mode (ours with the inference threads of the model's
config file), at VGA and 720p, with the selfie model and with deeplab_v3. Each run starts a
fresh node; ours and the baseline alternate. CPU per frame: the node process's CPU time over
the measured stream (all its threads), divided by the frames it answered; latency: a frame's
last mask arriving here minus its header stamp (its send time). A third process per model and
size answers every frame with ready-made masks of the same topics (no segmentation): the floor
that rclpy and DDS set for both nodes. The whole comparison runs in rounds (three by default),
minutes apart, and the figures pool every round's frames: on a shared machine one run's ratio
moves with what else the machine does in those seconds.

    .venv/bin/python benchmarks/baseline_benchmark.py [--seconds 6] [--rounds 3] [--quick]
"""

import argparse
import json
from pathlib import Path
import signal
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_common import DDS_PROFILE, machine_description, real_frames, use_dds_profile
from engine_benchmark import node_threads
from image_segmenter_ros.engine.model_catalog import ModelNotFoundError, resolve_model
from image_segmenter_ros.engine.tflite_metadata import read_segmenter_metadata
from image_segmenter_ros.node.output_messages import confidence_topics
import node_benchmark
from node_benchmark import (Bench, CommandNode, harness, image_messages, INPUT_QOS,
                            MaskRecorder, percentiles, ProcessMeter, Publisher, summarise,
                            wait_for_answers)
from sensor_msgs.msg import Image

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - older robots ship tflite-runtime instead
    from tflite_runtime.interpreter import Interpreter

BASELINE = Path(__file__).resolve().parent / 'baseline_afternoon_node.py'
# The first fetched of each group: the Tasks selfie model (the legacy one has its weights).
MODEL_CHOICES = (('selfie_segmenter', 'selfie_segmentation'), ('deeplab_v3',))
SIZES = ('VGA', '720p')
HZ = 30.0
ENCODING = 'bgr8'
KINDS = ('ours', 'baseline')
# Receiving each frame and publishing ready-made masks of the same topics, sizes and types,
# with no segmentation: the CPU and latency floor that rclpy and DDS set for any Python node.
ECHO = 'echo'
CPU_VS_BASELINE = 1.0 / 3.0
# An echo that drops this share of the frames shows the rate is beyond the machine for any node.
SATURATED_PCT = 1.0
P50_VS_BASELINE = 0.5
# Ours must exit within this time of SIGINT; the others are killed after it and noted.
STOP_TIMEOUT = 30.0


def chosen_models() -> Tuple[Dict[str, Path], List[str]]:
    """Return the models to run by name, and why the others are not run."""
    paths, missing = {}, []
    for choices in MODEL_CHOICES:
        for name in choices:
            try:
                paths[name] = resolve_model(name)
                break
            except ModelNotFoundError as error:
                reason = str(error)
        else:
            missing.append('%s: %s' % (' or '.join(choices), reason))
    return paths, missing


def output_topics(path: Path) -> List[str]:
    """Return the category topic and the topics of the masks MediaPipe gives, named as ours."""
    labels = list(read_segmenter_metadata(path.read_bytes()).labels)
    classes = int(Interpreter(model_path=str(path)).get_output_details()[-1]['shape'][-1])
    if classes == 1:  # ours adds a background mask that MediaPipe has not: not asked for
        return ['category_mask'] + confidence_topics(['background'] + labels)[1:]
    return ['category_mask'] + confidence_topics(labels)


def run(bench: Bench, kind: str, path: Path, size: str, topics: Sequence[str],
        seconds: float, warm_up: float) -> Dict[str, Any]:
    """Stream one size into a fresh node of ``kind``; return its figures."""
    bench.count += 1
    namespace = '/baseline_bench_%d' % bench.count
    topic = namespace + '/camera/image'
    remaps = ['-r', 'image:=' + topic, '-r', '__ns:=' + namespace]
    log_path = bench.log_dir / ('%s_%d.log' % (kind, bench.count))
    threads = node_threads(path.stem)  # the setting of the model's config file
    if kind == ECHO:
        node = CommandNode([sys.executable, '-c', node_benchmark.ECHO_SOURCE, topic, namespace]
                           + list(topics), bench.env, log_path)
    elif kind == 'ours':
        node = harness.NodeProcess(
            ['-p', 'model:=' + str(path), '-p', 'running_mode:=LIVE_STREAM',
             '-p', 'output_category_mask:=true', '-p', 'output_confidence_masks:=true',
             '-p', 'num_threads:=%d' % threads] + remaps, bench.env, log_path)
    else:
        node = CommandNode([sys.executable, str(BASELINE), str(path)] + list(topics)
                           + ['--ros-args'] + remaps, bench.env, log_path)
    probe = bench.probe.node
    recorder = MaskRecorder(bench.probe, namespace, topics)
    publisher = probe.create_publisher(Image, topic, INPUT_QOS)

    def connected() -> bool:
        if node.process.poll() is not None:
            raise RuntimeError('The %s node exited with %d:\n%s'
                               % (kind, node.process.returncode, log_path.read_text()))
        return publisher.get_subscription_count() >= 1 and all(
            probe.count_publishers('%s/%s' % (namespace, name)) >= 1 for name in topics)

    try:
        harness.wait_until(connected, 90.0, 'the %s node to connect' % kind)
        sender = Publisher(publisher, image_messages(real_frames(*node_benchmark.SIZES[size]),
                                                     ENCODING))
        meter = ProcessMeter(node.process.pid)
        sender.stream(warm_up, HZ)
        cpu_start = meter.cpu_seconds()
        stamps, rate = sender.stream(seconds, HZ)
        wait_for_answers(recorder, stamps, 5.0)
        cpu = meter.cpu_seconds() - cpu_start
        memory = meter.memory_mb()
    finally:
        try:
            code = node.stop(signal.SIGINT, timeout=STOP_TIMEOUT)
        except AssertionError:  # killed by stop()
            if kind == 'ours':
                raise
            # MediaPipe's close() can wait for ever on the results of a backlog of frames.
            code = None
        probe.destroy_publisher(publisher)
        for subscription in recorder.subscriptions:
            probe.destroy_subscription(subscription)
    result = summarise(recorder, stamps, rate, seconds)
    result['latencies_ms'] = [round(value, 3) for value in recorder.answered(stamps)[0]]
    result.update(memory)
    result.update({'kind': kind, 'exit_code': code, 'cpu_s': cpu, 'threads': threads,
                   'cpu_ms_per_answered': 1e3 * cpu / max(1, result['answered']),
                   'cpu_ms_per_sent': 1e3 * cpu / max(1, len(stamps))})
    return result


def measure(seconds: float = 6.0, warm_up: float = 3.0, rounds: int = 3, quick: bool = False,
            log_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Run ours, the baseline and the echo on every model and size, in rounds; return figures."""
    sizes = SIZES
    paths, missing = chosen_models()
    if quick:
        seconds, warm_up, rounds, sizes = 2.0, 1.0, 2, SIZES[:1]
        paths = dict(list(paths.items())[:1])
    temporary = None if log_dir else tempfile.TemporaryDirectory(prefix='baseline_benchmark_')
    use_dds_profile(DDS_PROFILE)
    bench = Bench(Path(log_dir or temporary.name))
    results: Dict[str, Any] = {'seconds': seconds, 'warm_up': warm_up, 'hz': HZ,
                               'rounds': rounds, 'missing': missing, 'runs': []}
    topics = {model: output_topics(path) for model, path in paths.items()}
    try:
        for round_index in range(rounds):
            for cell, (model, size) in enumerate(
                    (model, size) for model in paths for size in sizes):
                # Who goes first alternates from cell to cell and from round to round.
                order = KINDS if (cell + round_index) % 2 == 0 else KINDS[::-1]
                for kind in order + (ECHO,):
                    print('baseline benchmark, round %d: %s %s %s ...'
                          % (round_index + 1, kind, model, size), file=sys.stderr, flush=True)
                    result = run(bench, kind, paths[model], size, topics[model], seconds,
                                 warm_up)
                    result.update({'model': model, 'size': size, 'round': round_index,
                                   'topics': len(topics[model])})
                    results['runs'].append(result)
    finally:
        bench.close()
        if temporary:
            temporary.cleanup()
    return results


def pooled(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Return the figures of one node's runs of one model and size as if they were one run."""
    sent, answered = (sum(run[key] for run in runs) for key in ('sent', 'answered'))
    cpu = sum(run['cpu_s'] for run in runs)
    latencies = [value for run in runs for value in run['latencies_ms']]
    out = {key: runs[0][key] for key in ('model', 'size', 'kind', 'topics', 'threads')}
    out.update({'runs': len(runs), 'sent': sent, 'answered': answered, 'drops': sent - answered,
                'drops_pct': 100.0 * (sent - answered) / max(1, sent), 'cpu_s': cpu,
                'cpu_ms_per_answered': 1e3 * cpu / max(1, answered),
                'cpu_ms_per_sent': 1e3 * cpu / max(1, sent),
                'rss_mb': max(run['rss_mb'] for run in runs),
                'peak_rss_mb': max(run['peak_rss_mb'] for run in runs)})
    out.update({'latency_' + key: value for key, value in percentiles(latencies).items()})
    return out


def groups(results: Dict[str, Any]) -> List[Tuple[Dict[str, Any], ...]]:
    """
    Return (ours, baseline, echo or None, rounds) for each model and size.

    The first three pool their node's rounds; ``rounds`` pairs ours and the baseline of each
    round, for the spread of the ratios.
    """
    by_key: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for run in results['runs']:
        by_key.setdefault((run['model'], run['size'], run['kind']), []).append(run)
    out = []
    for model, size, kind in by_key:
        if kind != 'ours' or (model, size, 'baseline') not in by_key:
            continue
        ours, baseline = by_key[(model, size, 'ours')], by_key[(model, size, 'baseline')]
        echo = by_key.get((model, size, ECHO))
        out.append((pooled(ours), pooled(baseline), echo and pooled(echo),
                    list(zip(ours, baseline))))
    return out


def targets(results: Dict[str, Any], engine_cpu_ms: Optional[Dict[str, Tuple[float, float]]]
            = None) -> List[Tuple[str, str, bool]]:
    """
    Ours against the baseline: CPU per answered frame and latency p50, per model and size.

    The echo's figures are the floor both nodes stand on; the ratio of what each adds above it
    is given beside the ratio the target is judged on. ``engine_cpu_ms``, by model the CPU per
    VGA frame at this rate of the bare ``invoke()`` and of the engine (with the node's
    threads), adds two bounds of our CPU: that floor plus the inference alone, which no node
    running this model can go below, and that floor plus the engine.
    """
    out = []
    for ours, baseline, echo, rounds in groups(results):
        where = '%s %s %.0f Hz' % (ours['model'], ours['size'], results['hz'])
        for key, limit, what in (('cpu_ms_per_answered', CPU_VS_BASELINE,
                                  'CPU per frame <= 1/3 of its'),
                                 ('latency_p50', P50_VS_BASELINE, 'latency p50 <= 1/2 of its')):
            name = 'node vs afternoon baseline, %s: %s' % (where, what)
            if ours[key] is None or baseline[key] is None:
                out.append((name, 'no frame answered', False))
                continue
            ratio = ours[key] / baseline[key]
            measured = '%.2fx (%.1f / %.1f ms' % (ratio, ours[key], baseline[key])
            if len(rounds) > 1:
                measured += '; rounds %s' % ', '.join(
                    'n/a' if None in (a[key], b[key]) else '%.2fx' % (a[key] / b[key])
                    for a, b in rounds)
            if echo is not None and echo[key] is not None:
                measured += '; floor, rclpy and DDS alone: %.1f ms' % echo[key]
                if echo['drops_pct'] >= SATURATED_PCT:
                    measured += (', which itself drops %.0f %% of the frames: %.0f Hz is beyond '
                                 'this machine here' % (echo['drops_pct'], results['hz']))
                if ours[key] > echo[key] and baseline[key] > echo[key]:
                    measured += '; above it %.2fx' % (
                        (ours[key] - echo[key]) / (baseline[key] - echo[key]))
                engine = (engine_cpu_ms or {}).get(ours['model'])
                if key == 'cpu_ms_per_answered' and ours['size'] == 'VGA' and engine:
                    measured += ('; bounds, that floor plus the bare invoke() at %.0f Hz: '
                                 '%.2fx, plus the engine: %.2fx' % (
                                     results['hz'], (echo[key] + engine[0]) / baseline[key],
                                     (echo[key] + engine[1]) / baseline[key]))
            out.append((name, measured + ')', ratio <= limit))
    return out


def _ms(value: Optional[float]) -> str:
    return 'n/a' if value is None else '%.1f ms' % value


def markdown(results: Dict[str, Any]) -> str:
    """Return the runs as one table, ours beside the baseline."""
    lines = ['%d round(s) of %.0f s per node after a %.0f s warm-up, %.0f Hz, %s frames; each '
             'run a fresh node; the figures pool the rounds. CPU: the node process over the '
             'measured stream, per frame answered (and per frame sent); drops: frames sent '
             'without all their masks.' % (results.get('rounds', 1), results['seconds'],
                                           results['warm_up'], results['hz'], ENCODING), '']
    lines += ['- not run: %s' % reason for reason in results['missing']]
    lines += ['- the %s node of %s %s, round %d, did not exit within %.0f s of SIGINT and was '
              'killed' % (run['kind'], run['model'], run['size'], run['round'] + 1, STOP_TIMEOUT)
              for run in results['runs'] if run['exit_code'] is None]
    lines += ['', '| model | frame | node | topics | sent | drops | p50 | p95 | p99 '
              '| CPU per frame (per sent) | RSS (peak) |',
              '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    names = {'ours': 'ours', 'baseline': 'afternoon baseline',
             ECHO: 'echo (floor: rclpy and DDS alone)'}
    for group in groups(results):
        for run in filter(None, group[:3]):
            lines.append('| %s | %s | %s | %d | %d | %d (%.1f %%) | %s | %s | %s | %.1f ms '
                         '(%.1f ms) | %.0f (%.0f) MB |' % (
                             run['model'], run['size'], names[run['kind']],
                             run['topics'], run['sent'], run['drops'], run['drops_pct'],
                             _ms(run['latency_p50']), _ms(run['latency_p95']),
                             _ms(run['latency_p99']), run['cpu_ms_per_answered'],
                             run['cpu_ms_per_sent'], run['rss_mb'], run['peak_rss_mb']))
    return '\n'.join(lines) + '\n'


def plot(results: Dict[str, Any], axes: Any) -> None:
    """Draw CPU per frame and latency p50 of ours and the baseline for every run."""
    runs = [group[:2] for group in groups(results)]
    width = 0.2
    series = (('ours', 0, 'cpu_ms_per_answered', 'CPU per frame'),
              ('afternoon baseline', 1, 'cpu_ms_per_answered', 'CPU per frame'),
              ('ours', 0, 'latency_p50', 'latency p50'),
              ('afternoon baseline', 1, 'latency_p50', 'latency p50'))
    for offset, (label, which, key, what) in enumerate(series):
        axes.bar([index + offset * width for index in range(len(runs))],
                 [pair[which][key] or 0.0 for pair in runs], width,
                 label='%s, %s' % (label, what), hatch='//' if 'latency' in key else None)
    axes.set_xticks([index + 1.5 * width for index in range(len(runs))])
    axes.set_xticklabels(['%s\n%s' % (ours['model'], ours['size']) for ours, _ in runs],
                         fontsize=8)
    axes.set_ylabel('milliseconds')
    axes.set_title('Node vs the afternoon baseline, %.0f Hz' % results['hz'])
    axes.legend(fontsize=7)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the comparison and print its table and targets."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--seconds', type=float, default=6.0, help='per run')
    parser.add_argument('--warm-up', type=float, default=3.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--quick', action='store_true', help='a smoke run')
    parser.add_argument('--json', type=Path, help='also write the results as JSON here')
    parser.add_argument('--log-dir', type=Path, help="keep the nodes' logs here")
    args = parser.parse_args(argv)
    results = measure(args.seconds, args.warm_up, args.rounds, args.quick, args.log_dir)
    print('\n'.join('- %s' % line for line in machine_description()))
    print(markdown(results))
    for name, value, met in targets(results):
        print('%s: %s, %s' % (name, value, 'met' if met else 'not met'))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

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
The whole benchmark suite in one run: engine, node over DDS, the afternoon baseline, segment_bag.

Writes docs/benchmarks.md (machine, date, targets, every table, profile summaries),
docs/images/benchmarks.png and the raw figures, docs/benchmarks.json.

    .venv/bin/python benchmarks/run_benchmarks.py [--quick]
"""

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import baseline_benchmark
from bench_common import machine_description
import engine_benchmark
from matplotlib.figure import Figure
import node_benchmark
import segment_bag_benchmark

ROOT = Path(__file__).resolve().parents[1]
Target = Tuple[str, str, bool]


def measure(quick: bool) -> Dict[str, Any]:
    """Run the benchmarks one after the other, in this process."""
    started = time.perf_counter()
    results: Dict[str, Any] = {'machine': machine_description(), 'quick': quick}
    results['engine'] = (engine_benchmark.measure(**engine_benchmark.QUICK) if quick
                         else engine_benchmark.measure())
    results['node'] = node_benchmark.measure(profile=True, quick=quick)
    results['baseline'] = baseline_benchmark.measure(quick=quick)
    results['segment_bag'] = (segment_bag_benchmark.measure(frames=20, rounds=1) if quick
                              else segment_bag_benchmark.measure())
    results['seconds'] = time.perf_counter() - started
    return results


def all_targets(results: Dict[str, Any]) -> List[Target]:
    """Every target of the suite as (what, measured, met)."""
    rows = engine_benchmark.targets(results['engine'])
    rows += node_benchmark.targets(results['node'])
    paced = results['engine'].get('paced', {})
    engine_cpu = {model: tuple(paced[model]['%s t%d' % (variant, engine_benchmark.node_threads(
        model))]['paced_cpu_ms'] for variant in ('invoke', 'ours both')) for model in paced}
    rows += baseline_benchmark.targets(results['baseline'], engine_cpu)
    rows += segment_bag_benchmark.targets(results['segment_bag'])
    return rows


def plot(results: Dict[str, Any], path: Path) -> None:
    """Engine per model, CPU per frame at 30 Hz, node latency, and the node vs the baseline."""
    figure = Figure(figsize=(14, 9))
    (engine_axes, paced_axes), (node_axes, baseline_axes) = figure.subplots(2, 2)
    engine = results['engine']
    models = list(engine['models'])
    size = engine_benchmark.TARGET_SIZE
    series = (('invoke t2', 'bare LiteRT invoke()'), ('ours both t2', 'ours segment()'),
              (engine_benchmark.MEDIAPIPE, 'MediaPipe Tasks segment()'))
    grouped_bars(engine_axes, models, [
        (label, [engine['models'][model][size][variant]['median_ms'] for model in models])
        for variant, label in series])
    engine_axes.set_ylabel('milliseconds per frame (median)')
    engine_axes.set_title('Engine per model, %s, both masks, 2 inference threads, back to back'
                          % size)
    threads = engine['settings']['node_threads']
    paced = [model for model in models if model in engine.get('paced', {})]
    grouped_bars(paced_axes, paced, [
        ("ours, the node's threads for the model",
         [engine['paced'][model]['ours both t%d' % threads[model]]['paced_cpu_ms']
          for model in paced]),
        ('MediaPipe Tasks', [engine['paced'][model][engine_benchmark.MEDIAPIPE]['paced_cpu_ms']
                             for model in paced])])
    paced_axes.set_ylabel('CPU milliseconds per frame (all threads)')
    paced_axes.set_title('Engine called at %.0f Hz, %s, both masks'
                         % (engine_benchmark.PACED_HZ, size))
    node_benchmark.plot_latency(results['node'], node_axes)
    baseline_benchmark.plot(results['baseline'], baseline_axes)
    date = results['machine'][0].replace('Date: ', '')
    figure.suptitle('image_segmenter_ros benchmarks, %s' % date)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def grouped_bars(axes: Any, models: List[str], series: List[Tuple[str, List[float]]]) -> None:
    """Draw one group of bars per model, one bar per series."""
    width = 0.8 / len(series)
    for offset, (label, values) in enumerate(series):
        axes.bar([i + offset * width for i in range(len(models))], values, width, label=label)
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(models))])
    axes.set_xticklabels([engine_benchmark.short_name(model).replace('_segment', '_\nsegment')
                          for model in models], fontsize=7)
    axes.legend(fontsize=8)


def markdown(results: Dict[str, Any], image: str) -> str:
    """Return the benchmarks page."""
    lines = ['# Benchmarks', '',
             'Generated by `make bench` (`benchmarks/run_benchmarks.py`) in one run on this '
             'machine (below); every ratio compares figures measured in that same run. On a '
             'shared machine absolute times move from run to run, ratios less; the engine '
             'comparisons and the node against the baseline pool rounds minutes apart for '
             'that.', '']
    lines += ['- %s' % line for line in results['machine']]
    smoke = ' (--quick smoke run)' if results['quick'] else ''
    lines += ['- whole suite: %.0f s%s' % (results['seconds'], smoke),
              '', '![Engine times and node latency](%s)' % image, '', '## Targets', '',
              '| target | measured | status |', '|---|---:|---|']
    lines += ['| %s | %s | %s |' % (name, value, 'met' if met else '**not met**')
              for name, value, met in all_targets(results)]
    lines += ['', '## Engine: ours vs MediaPipe Tasks vs bare LiteRT', '',
              engine_benchmark.markdown(results['engine']), '',
              '## Node end to end over DDS', '', node_benchmark.markdown(results['node']), '',
              '## Node vs the afternoon baseline (MediaPipe Tasks in a plain rclpy node)', '',
              baseline_benchmark.markdown(results['baseline']), '',
              '## Offline: segment_bag vs the engine', '',
              segment_bag_benchmark.markdown(results['segment_bag']), '']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the suite and write the page, the plot and the raw figures."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='smoke run with few frames (figures not meaningful)')
    parser.add_argument('--output', type=Path, default=ROOT / 'docs' / 'benchmarks.md',
                        help='the page; the plot goes to images/ beside it, the figures to .json')
    args = parser.parse_args(argv)
    results = measure(args.quick)
    image = args.output.parent / 'images' / 'benchmarks.png'
    plot(results, image)
    text = markdown(results, str(image.relative_to(args.output.parent)))
    args.output.write_text(text)
    raw = args.output.with_suffix('.json')
    raw.write_text(json.dumps(results, indent=1))
    print(text)
    print('wrote %s, %s and %s' % (args.output, image, raw), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())

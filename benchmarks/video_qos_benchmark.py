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
What VIDEO mode's input reliability costs and saves, with rmw_fastrtps' default transports.

A reliable publisher (a driver, replay_bag, ``ros2 bag play``) streams VGA bgr8 frames at
30 Hz into a VIDEO-mode node, with no Fast DDS profile in any process: once with the node's
subscription following the publisher (reliable, the default), once forced to best effort by
``qos_overrides`` (the default before it followed). Prints a markdown section for
docs/benchmarks.md.
"""

import argparse
from pathlib import Path
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from bench_common import machine_description, real_frames, use_dds_profile
from node_benchmark import Bench, EngineTimer, run_scenario, Scenario, SIZES

SCENARIOS = (
    Scenario('VIDEO, subscription follows the publisher (reliable)', 'VGA', 'VIDEO', 30.0,
             'bgr8', subscription=None),
    Scenario('VIDEO, subscription best effort', 'VGA', 'VIDEO', 30.0, 'bgr8',
             subscription='best_effort'),
)


def measure(seconds: float, warm_up: float) -> List[Dict[str, Any]]:
    use_dds_profile(None)
    engine = EngineTimer({size: real_frames(*wh) for size, wh in SIZES.items()})
    with tempfile.TemporaryDirectory(prefix='video_qos_benchmark_') as log_dir:
        bench = Bench(Path(log_dir))
        try:
            return [run_scenario(bench, scenario, seconds, warm_up, engine)
                    for scenario in SCENARIOS]
        finally:
            bench.close()
            engine.close()


def markdown(results: List[Dict[str, Any]], seconds: float, warm_up: float) -> str:
    def ms(value: Optional[float]) -> str:
        return 'n/a' if value is None else '%.1f ms' % value
    lines = ['| node subscription | reached the node | sent | all masks back | p50 | p95 | p99 |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for item in results:
        lines.append('| %s | %d of %d | %d | %d (%.1f %% lost) | %s | %s | %s |' % (
            item['name'], item['node_received'], item['total_sent'], item['sent'],
            item['answered'], item['drops_pct'], ms(item['latency_p50']),
            ms(item['latency_p95']), ms(item['latency_p99'])))
    lines += ['', '%.0f s per run after a %.0f s warm-up (reached the node: both, from the '
              "node's counters); VGA bgr8 at 30 Hz from a reliable keep-last-10 publisher; "
              'latency from the stamp (send time) to the last of the three masks here; %s.'
              % (seconds, warm_up, '; '.join(machine_description()[:3]))]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--seconds', type=float, default=12.0, help='per run')
    parser.add_argument('--warm-up', type=float, default=2.0)
    args = parser.parse_args(argv)
    print(markdown(measure(args.seconds, args.warm_up), args.seconds, args.warm_up))
    return 0


if __name__ == '__main__':
    sys.exit(main())

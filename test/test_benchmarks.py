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
The benchmark suite runs end to end (a --quick smoke run: its figures are not judged here).

`make bench` must work on a fresh clone; this runs the same script with few frames and checks
that every part measured something and that the page, the plot and the figures are written.
"""

import json
import subprocess
import sys

import pytest
from ros_harness import PACKAGE_ROOT


def test_quick_suite_writes_page_plot_and_figures(tmp_path, env, monkeypatch):
    page = tmp_path / 'benchmarks.md'
    result = subprocess.run(
        [sys.executable, str(PACKAGE_ROOT / 'benchmarks' / 'run_benchmarks.py'), '--quick',
         '--output', str(page)], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    figures = json.loads(page.with_suffix('.json').read_text())
    engine = figures['engine']['models']
    # The Tasks models where they were fetched (from ../shared), else named as missing.
    assert set(engine) | set(figures['engine']['missing']) >= {
        'selfie_segmentation', 'selfie_segmentation_landscape', 'selfie_segmenter',
        'selfie_segmenter_landscape', 'hair_segmenter', 'deeplab_v3'}
    assert set(engine) >= {'selfie_segmentation', 'selfie_segmentation_landscape'}
    for by_size in engine.values():
        assert set(by_size) == {'640x480', '1280x720'}
        for variants in by_size.values():
            ours = {'ours %s t%d' % (outputs, threads) for threads in (1, 2)
                    for outputs in ('both', 'confidence', 'category')}
            assert ours | {'invoke t1', 'invoke t2', 'mediapipe both',
                           'write masks'} <= set(variants)
            assert all(value['median_ms'] > 0 for value in variants.values())
    settings = figures['engine']['settings']
    rounds = settings['rounds']
    assert rounds >= 2  # the samples of all rounds pooled, each round's median kept
    for model, by_size in engine.items():
        for size, variants in by_size.items():
            for name, value in variants.items():
                assert len(figures['engine']['rounds'][model][size][name]) == rounds
                assert value['frames'] == rounds * settings['frames'] * settings['repeats']
    assert set(figures['engine']['paced']) == set(engine)
    for variants in figures['engine']['paced'].values():
        assert {'ours both t1', 'ours both t2', 'mediapipe both', 'compute loop',
                'invoke and write masks'} <= set(variants)
        assert all(value['paced_ms'] > 0 and value['paced_cpu_ms'] > 0
                   for value in variants.values())
        assert all(value['frames'] == rounds * settings['paced_rounds'] * settings['paced_block']
                   for value in variants.values())
    runs = figures['baseline']['runs']
    assert {run['kind'] for run in runs} == {'ours', 'baseline', 'echo'}, runs
    assert all(run['answered'] > 0 and run['cpu_ms_per_answered'] > 0 for run in runs), runs
    assert all(run['exit_code'] == 0 for run in runs if run['kind'] == 'ours'), runs
    monkeypatch.syspath_prepend(str(PACKAGE_ROOT / 'benchmarks'))
    import baseline_benchmark
    rounds = figures['baseline']['rounds']
    assert rounds >= 2 and sorted(run['round'] for run in runs) == sorted(list(range(rounds)) * 3)
    for ours, baseline, echo, pairs in baseline_benchmark.groups(figures['baseline']):
        kinds = [run for run in runs if run['kind'] == ours['kind']]
        assert ours['runs'] == rounds == len(pairs) and ours['sent'] == sum(
            run['sent'] for run in kinds)
        assert ours['cpu_ms_per_answered'] == pytest.approx(
            1e3 * sum(run['cpu_s'] for run in kinds) / sum(run['answered'] for run in kinds))
        assert min(run['latency_p50'] for run in kinds) <= ours['latency_p50'] <= max(
            run['latency_p50'] for run in kinds)
    node = figures['node']
    assert node['scenarios'], 'the node benchmark ran no scenario'
    for scenario in node['scenarios']:
        assert scenario['answered'] > 0, scenario['name']
        assert scenario['engine_p50_ms'] > 0 and scenario['engine_paced_p50_ms'] > 0
    assert node['rate_search']['steps'], 'the rate search ran no step'
    assert node['profile'].get('worker_samples', 0) > 0, node['profile']
    for outputs in figures['segment_bag']['outputs'].values():
        assert outputs['disk_ms'] > 0 and outputs['engine_ms'] > 0
    threads = {item['thread'] for item in figures['segment_bag']['profile'].get('threads', [])}
    # The writer and at least one of the threads that segment (named segment_<n> when py-spy
    # can read the name).
    assert 'bag_writer' in threads and threads - {'bag_writer', 'bag_reader'}, \
        figures['segment_bag']['profile']

    text = page.read_text()
    assert '(rounds ' in text  # each round's ratio beside the pooled one
    for heading in ('## Targets', '## Engine', '## Node end to end over DDS',
                    '### Profile of the node', '## Node vs the afternoon baseline',
                    'At a steady 30 Hz', '## Offline: segment_bag',
                    'Profile of one `segment_bag` run'):
        assert heading in text
    assert text.count('| met |') + text.count('| **not met** |') >= 10
    plot = page.parent / 'images' / 'benchmarks.png'
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

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
segment_bag against the bare engine, on the same real frames, in the same process.

A bag of Megamind.avi frames (720x528, bgr8) is segmented by ``segment_bag`` (read, decode,
segment, encode the node's messages, write the output bag with the input copied) and, in
alternate rounds, the same frames, already decoded to RGB, by the engine's ``segment()``
alone, called back to back with the same outputs. The ratio of the per-frame times is what
the tool costs against the engine: with its default ``--jobs`` (frames segmented at once) and
with ``--jobs 1``. The output bag is written once to disk and once to memory (/dev/shm), to
tell storage throughput from CPU cost. Each timed write starts after ``os.sync()``: no round
pays for the writeback of the rounds before it. ``measure()`` and ``markdown()`` serve the
suite.
"""

import argparse
import collections
import json
import os
from pathlib import Path
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_common import py_spy_prefix, py_spy_stacks
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions, keep_freed_memory
from image_segmenter_ros.node.input_images import image_to_array
from image_segmenter_ros.tools.bag_io import BagReader
from image_segmenter_ros.tools.demo import DEFAULT_VIDEO, tool
from image_segmenter_ros.tools.make_sample_bag import make_sample_bag
from image_segmenter_ros.tools.segment_bag import DEFAULT_JOBS, segment_bag
import numpy as np
import yaml

MODEL = 'selfie_segmentation'
# Output choice: whether the confidence masks are wanted (the category mask always is).
OUTPUTS = {'both masks': True, 'category mask only': False}


def decoded_frames(bag: Path) -> Tuple[List[np.ndarray], List[bytes]]:
    """Return the bag's frames decoded to RGB, and their CDR bytes."""
    with BagReader(bag) as reader:
        messages = list(reader.messages(reader.image_topics()))
        return ([np.ascontiguousarray(image_to_array(reader.decode(m))) for m in messages],
                [m.raw for m in messages])


def engine_round(segmenter: ImageSegmenter, frames: Sequence[np.ndarray],
                 confidence: bool) -> float:
    start = time.perf_counter()
    for frame in frames:
        segmenter.segment(frame, output_confidence_masks=confidence)
    return (time.perf_counter() - start) / len(frames)


def storage_round(segmenter: ImageSegmenter, frames: Sequence[np.ndarray],
                  raws: Sequence[bytes], confidence: bool, output: Path) -> float:
    """
    Time the engine while a thread writes each frame's input bytes and masks to a plain file.

    Nothing else (no reading, decoding, bag format): the least that storing what segment_bag
    stores costs beside the engine on this machine, to compare segment_bag with.
    """
    pending: 'queue.Queue[Optional[List[Any]]]' = queue.Queue(maxsize=16)

    def write() -> None:
        with open(output, 'wb') as file:
            for parts in iter(pending.get, None):
                for part in parts:
                    file.write(part)
    writer = threading.Thread(target=write)
    os.sync()
    start = time.perf_counter()
    writer.start()
    for frame, raw in zip(frames, raws):
        result = segmenter.segment(frame, output_confidence_masks=confidence)
        pending.put([raw, result.category_mask] + (result.confidence_masks if confidence else []))
    pending.put(None)
    writer.join()
    elapsed = (time.perf_counter() - start) / len(frames)
    output.unlink()
    return elapsed


def tool_round(bag: Path, output: Path, frames: int, params: Path, jobs: int) -> float:
    shutil.rmtree(output, ignore_errors=True)
    os.sync()
    start = time.perf_counter()
    segment_bag(bag, output, params_file=params, progress=False, jobs=jobs)
    elapsed = (time.perf_counter() - start) / frames
    shutil.rmtree(output)
    return elapsed


PLACES = {'disk': 'bag on disk', 'memory': 'bag in /dev/shm'}
ONE_JOB = 'one_job'  # suffix of the --jobs 1 figures
ENGINE_THREADS = 2  # the engine's, and the num_threads segment_bag shares among its jobs
TARGET_RATIO = 1.25  # segment_bag's per-frame time over the engine's, at most


def _medians(frames: int, rounds: int, work: Path) -> Dict[str, Dict[str, float]]:
    """Return median per-frame seconds of the engine and segment_bag, per output choice."""
    bag = work / 'megamind'
    make_sample_bag(DEFAULT_VIDEO, bag, frames=frames, start_time=1000.0)
    images, raws = decoded_frames(bag)
    places = {'disk': work / 'out'}
    if Path('/dev/shm').is_dir():
        places['memory'] = Path(tempfile.mkdtemp(dir='/dev/shm')) / 'out'
    options = ImageSegmenterOptions(model_path=MODEL, output_category_mask=True,
                                    num_threads=ENGINE_THREADS)
    medians: Dict[str, Dict[str, float]] = {}
    try:
        with ImageSegmenter.create_from_options(options) as segmenter:
            engine_round(segmenter, images[:5], True)  # warm-up: caches and compiled code
            for outputs, confidence in OUTPUTS.items():
                params = work / ('%s.yaml' % outputs)
                params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
                    'model': MODEL, 'output_confidence_masks': confidence,
                    'num_threads': ENGINE_THREADS}}}))
                times: Dict[str, List[float]] = {'engine': []}
                for _ in range(rounds):
                    for place, output in places.items():
                        times['engine'].append(engine_round(segmenter, images, confidence))
                        times.setdefault(place, []).append(
                            tool_round(bag, output, len(images), params, DEFAULT_JOBS))
                        times.setdefault('%s_%s' % (place, ONE_JOB), []).append(
                            tool_round(bag, output, len(images), params, 1))
                        times.setdefault(place + '_floor', []).append(storage_round(
                            segmenter, images, raws, confidence, output.with_suffix('.bin')))
                medians[outputs] = {name: statistics.median(v) for name, v in times.items()}
    finally:
        if 'memory' in places:
            shutil.rmtree(places['memory'].parent, ignore_errors=True)
    return medians


# The frame work of each of segment_bag's threads: segmenting and encoding, writing, reading;
# and where a thread only waits for another (py-spy samples some of those waits).
PER_FRAME_WORK = frozenset(('segment_bag.py:_Segmentation._outputs',
                            'segment_bag.py:_WriterThread._run',
                            'segment_bag.py:_ahead.<locals>.produce'))
WAITING = frozenset(('threading.py:Condition.wait', 'queue.py:Queue.get', 'queue.py:Queue.put'))


def profile_tool(bag: Path, params: Path, output: Path, frames: int, rate: int = 250,
                 top: int = 4) -> Dict[str, Any]:
    """
    Sample one run of the segment_bag command with py-spy: busy time per frame of each thread.

    Samples of a thread waiting for another are left out, so the times are what the tool's
    Python threads spend working; threads LiteRT starts itself are native and not among
    them.
    """
    raw = output.with_name('segment_bag_profile.txt')
    prefix = py_spy_prefix(raw, rate)
    if prefix is None:
        return {'error': 'py-spy is not installed (pip install py-spy)'}
    command = prefix + tool('segment_bag') + [str(bag), str(output), '--params-file',
                                              str(params), '--force']
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    shutil.rmtree(output, ignore_errors=True)
    if completed.returncode != 0 or not raw.exists():
        return {'error': 'segment_bag under py-spy failed: %s' % completed.stderr[-2000:]}
    samples: Dict[str, int] = collections.Counter()
    own: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
    outside = 0  # start-up, opening and closing the bags, the main loop's own bookkeeping
    for thread, functions, count in py_spy_stacks(raw.read_text()):
        if functions[-1] in WAITING:
            continue
        if not PER_FRAME_WORK.intersection(functions):
            outside += count
            continue
        samples[thread] += count
        own[thread][functions[-1]] += count

    def per_frame(count: int) -> float:
        return 1000.0 * count / rate / frames
    return {'rate_hz': rate, 'frames': frames, 'outside_ms': 1000.0 * outside / rate,
            'threads': [{'thread': thread, 'ms_per_frame': per_frame(count),
                         'top': [(name, per_frame(n)) for name, n in
                                 own[thread].most_common(top)]}
                        for thread, count in samples.most_common()]}


def measure(frames: int = 120, rounds: int = 5) -> Dict[str, Any]:
    """
    Run the benchmark; return JSON-serialisable figures.

    ``outputs`` maps each output choice to the engine's and segment_bag's milliseconds per
    frame (``engine_ms``, ``disk_ms``, ``memory_ms``), frames per second (``*_fps``) and
    segment_bag's ratio to the engine (``disk_ratio``, ``memory_ratio``); ``*_one_job_*``
    are segment_bag with ``--jobs 1``, ``*_floor_*`` the engine beside a thread that only
    writes the same bytes (storage_round).
    A place that could not be measured (no /dev/shm) is missing.
    """
    keep_freed_memory()  # as the segment_bag command does
    with tempfile.TemporaryDirectory(prefix='segment_bag_benchmark_') as work:
        medians = _medians(frames, rounds, Path(work))
        profile = profile_tool(Path(work) / 'megamind', Path(work) / 'both masks.yaml',
                               Path(work) / 'profiled', frames)
    outputs: Dict[str, Dict[str, float]] = {}
    for choice, times in medians.items():
        figures = outputs[choice] = {}
        for name, seconds in times.items():
            figures['%s_ms' % name] = seconds * 1e3
            figures['%s_fps' % name] = 1.0 / seconds
            if name != 'engine':
                figures['%s_ratio' % name] = seconds / times['engine']
    return {'model': MODEL, 'video': DEFAULT_VIDEO.name, 'frames': frames, 'rounds': rounds,
            'jobs': DEFAULT_JOBS,
            'platform': '%s, %d CPUs, Python %s' % (platform.processor() or platform.machine(),
                                                    os.cpu_count(), platform.python_version()),
            'outputs': outputs, 'profile': profile}


def targets(results: Dict[str, Any]) -> List[Tuple[str, str, bool]]:
    """Check segment_bag's goal per output choice and place: (target, measured, met)."""
    return [('segment_bag %s, %s: <= %.2fx the engine' % (choice, PLACES[place], TARGET_RATIO),
             '%.2fx' % figures['%s_ratio' % place],
             figures['%s_ratio' % place] <= TARGET_RATIO)
            for choice, figures in results['outputs'].items() for place in PLACES
            if '%s_ratio' % place in figures]


def markdown(results: Dict[str, Any]) -> str:
    """Return the table of a ``measure()`` result, with a line saying how it was measured."""
    lines = ['| outputs | engine `segment()` | `--jobs` | segment_bag, %s | segment_bag, %s |'
             % tuple(PLACES.values()), '|---|---:|---:|---:|---:|']
    for choice, figures in results['outputs'].items():
        engine = '%.2f ms (%.0f fps)' % (figures['engine_ms'], figures['engine_fps'])
        for jobs, suffix in ((results['jobs'], ''), (1, '_' + ONE_JOB)):
            cells = ['%.2f ms (%.0f fps), %.2fx' % (
                figures['%s%s_ms' % (place, suffix)], figures['%s%s_fps' % (place, suffix)],
                figures['%s%s_ratio' % (place, suffix)])
                if '%s_ms' % place in figures else 'n/a' for place in PLACES]
            lines.append('| %s | %s | %d | %s |' % (choice, engine, jobs, ' | '.join(cells)))
            choice = engine = ''
    floors = '; '.join('%s: %s' % (choice, ', '.join(
        '%s %.2fx' % (place, figures['%s_floor_ratio' % place])
        for place in PLACES if '%s_floor_ratio' % place in figures))
        for choice, figures in results['outputs'].items())
    lines += ['', '%s, %d frames of %s (720x528 bgr8), per frame, medians of %d interleaved '
              'rounds, each write started after `os.sync()`; %s. The engine is called one frame '
              'at a time with %d inference threads; '
              'segment_bag segments `--jobs` frames at once (%d is its default here), each '
              'engine with %d // jobs threads (at least 1). What storing alone costs beside '
              'the engine (the engine while a thread only writes the same bytes to a file in '
              'the same place): %s.' % (
                  results['model'], results['frames'], results['video'], results['rounds'],
                  results['platform'], ENGINE_THREADS, results['jobs'], ENGINE_THREADS,
                  floors)]
    profile = results['profile']
    lines += ['', 'Profile of one `segment_bag` run (py-spy, both masks, bag on disk): time per '
              'frame that each Python thread spends on its frame work, waits for the other '
              'threads left out, and where it goes (own time; threads LiteRT starts itself are '
              'native and not shown).', '']
    if 'error' in profile:
        lines.append(profile['error'])
    else:
        lines += ['| thread | busy per frame | top functions, per frame |', '|---|---:|---|']
        lines += ['| %s | %.2f ms | %s |' % (item['thread'], item['ms_per_frame'], ', '.join(
                      '`%s` %.2f ms' % (name, value) for name, value in item['top']))
                  for item in profile['threads']]
        lines += ['', 'Outside the frame work (start-up: imports, model, compiled code; opening '
                  "and closing the bags; the main loop's own bookkeeping: handing input "
                  'messages to the writer, the progress bar): %.0f ms in all.'
                  % profile['outside_ms']]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark and print a Markdown table (``--json``: the raw figures too)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=120)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--json', type=Path, help='also write the figures to this file')
    args = parser.parse_args(argv)
    results = measure(args.frames, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())

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
Engine benchmark: our ``segment()`` against MediaPipe Tasks and the bare LiteRT ``invoke()``.

Everything runs in one process and one run, on real Megamind.avi frames resized to 640x480
and 1280x720. The measured variants are interleaved round-robin per frame (after a warm-up),
so machine load hits all of them alike; the ratios between them are the figures to trust,
absolute times on a shared machine are not. Prints a markdown table and writes it to
docs/engine_benchmark.md (or ``--output``).

    .venv/bin/python benchmarks/engine_benchmark.py [--frames N] [--repeats R] [--quick]
"""

import argparse
import cProfile
import datetime
import importlib.metadata
import io
import os
from pathlib import Path
import platform
import pstats
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from image_segmenter_ros import postprocessing, preprocessing
from image_segmenter_ros.model_catalog import resolve_model
from image_segmenter_ros.tflite_metadata import read_segmenter_metadata
import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - older robots ship tflite-runtime instead
    from tflite_runtime.interpreter import Interpreter

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
VIDEO_DIR = Path(os.environ.get('IMAGE_SEGMENTER_ROS_VIDEO_DIR',
                                Path.home() / '.cache' / 'image_segmenter_ros' / 'videos'))
MODELS = ('selfie_segmentation', 'selfie_segmentation_landscape')
SIZES = ((640, 480), (1280, 720))
THREADS = (1, 2)
DEFAULT_THREADS = 2
TARGET_VS_MEDIAPIPE = 3.0
TARGET_VS_INVOKE = 1.5

Timings = Dict[str, List[float]]


def read_frames(count: int) -> List[np.ndarray]:
    """Read ``count`` distinct RGB frames spread evenly over Megamind.avi."""
    path = VIDEO_DIR / 'Megamind.avi'
    if not path.exists():
        sys.exit('Sample video %s is missing: run `make videos` first.' % path)
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    wanted = set(np.linspace(0, total - 1, min(count, total)).astype(int).tolist())
    frames, index = [], 0
    while len(frames) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    if not frames:
        sys.exit('No frame could be read from %s.' % path)
    return frames


def resized(frames: Sequence[np.ndarray], size: Tuple[int, int]) -> List[np.ndarray]:
    """Return the frames stretched to (width, height), contiguous RGB uint8."""
    return [np.ascontiguousarray(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
            for frame in frames]


class BareInvoke:
    """A LiteRT interpreter on the model file; only ``invoke()`` is timed."""

    def __init__(self, model_path: Path, num_threads: int):
        model = model_path.read_bytes()
        metadata = read_segmenter_metadata(model)
        self.activation = metadata.activation
        self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[-1]
        self.height, self.width = (int(v) for v in self.input['shape'][1:3])
        self.scale, self.offset = preprocessing.value_range_transform(metadata.normalization)

    def set_input(self, image: np.ndarray) -> None:
        """Preprocess a frame exactly as the engine does and leave it in the input tensor."""
        pixels = preprocessing.warp_to_tensor(image, self.width, self.height)
        tensor = self.interpreter.tensor(self.input['index'])()[0]
        preprocessing.fill_tensor(pixels, tensor, self.scale, self.offset)
        del tensor

    def invoke(self) -> None:
        """Run the model on the current input."""
        self.interpreter.invoke()


def mediapipe_segmenter(model_path: Path):
    """Return MediaPipe Tasks' ImageSegmenter (both masks, IMAGE mode) on the model file."""
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import image_segmenter as mp_segmenter
    return mp_segmenter.ImageSegmenter.create_from_options(
        mp_segmenter.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            output_confidence_masks=True, output_category_mask=True))


def run_interleaved(variants: Dict[str, Callable[[int], Optional[float]]], frame_count: int,
                    repeats: int, warmup: int) -> Timings:
    """
    Time every variant on every frame, round-robin, after ``warmup`` untimed rounds.

    A variant is called with the frame index and returns its own measured seconds (or None
    to be timed here as a whole call). The variant order rotates from frame to frame so that
    no variant always runs right after the same neighbour.
    """
    names = list(variants)
    timings: Timings = {name: [] for name in names}
    for index in range(min(warmup, frame_count)):
        for name in names:
            variants[name](index)
    step = 0
    for _ in range(repeats):
        for index in range(frame_count):
            shift = step % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                measured = variants[name](index)
                elapsed = time.perf_counter() - start
                timings[name].append(elapsed if measured is None else measured)
            step += 1
    return timings


def benchmark_model(model: str, frames: Sequence[np.ndarray], repeats: int, warmup: int,
                    settle: float) -> Dict[Tuple[int, int], Timings]:
    """Measure all variants of one model at every size."""
    model_path = resolve_model(model)
    ours = {threads: ImageSegmenter.create_from_options(ImageSegmenterOptions(
        model_path=str(model_path), output_confidence_masks=True, output_category_mask=True,
        num_threads=threads)) for threads in THREADS}
    bare = {threads: BareInvoke(model_path, threads) for threads in THREADS}
    import mediapipe as mp
    reference = mediapipe_segmenter(model_path)
    results = {}
    try:
        for size in SIZES:
            images = resized(frames, size)

            def invoke(threads):
                def call(index):
                    bare[threads].set_input(images[index])
                    start = time.perf_counter()
                    bare[threads].invoke()
                    return time.perf_counter() - start
                return call

            def segment(threads, confidence=True, category=True):
                segmenter = ours[threads]
                return lambda index: segmenter.segment(
                    images[index], output_confidence_masks=confidence,
                    output_category_mask=category) and None

            def mediapipe(index):
                start = time.perf_counter()
                result = reference.segment(
                    mp.Image(image_format=mp.ImageFormat.SRGB, data=images[index]))
                result.category_mask.numpy_view()
                for mask in result.confidence_masks:
                    mask.numpy_view()
                elapsed = time.perf_counter() - start
                # MediaPipe's graph threads finish up after segment() returns; let them
                # settle so that their work is not charged to the next variant.
                time.sleep(settle)
                return elapsed

            variants = {'mediapipe both t?': mediapipe}
            for threads in THREADS:
                variants['invoke t%d' % threads] = invoke(threads)
                variants['ours both t%d' % threads] = segment(threads)
            variants['ours confidence t%d' % DEFAULT_THREADS] = segment(
                DEFAULT_THREADS, category=False)
            variants['ours category t%d' % DEFAULT_THREADS] = segment(
                DEFAULT_THREADS, confidence=False)
            results[size] = run_interleaved(variants, len(images), repeats, warmup)
    finally:
        reference.close()
        for segmenter in ours.values():
            segmenter.close()
    return results


def stage_breakdown(model: str, frames: Sequence[np.ndarray], size: Tuple[int, int],
                    repeats: int, warmup: int) -> Timings:
    """
    Time each step of the engine's both-masks path with the public stage functions.

    The steps are the ones ``ImageSegmenter.segment()`` runs, on the same interpreter
    settings; ``segment()`` itself is interleaved with them for the total.
    """
    model_path = resolve_model(model)
    bare = BareInvoke(model_path, DEFAULT_THREADS)
    segmenter = ImageSegmenter.create_from_options(ImageSegmenterOptions(
        model_path=str(model_path), output_confidence_masks=True, output_category_mask=True,
        num_threads=DEFAULT_THREADS))
    images = resized(frames, size)
    width, height = size
    timings: Timings = {name: [] for name in (
        'warp', 'fill', 'invoke', 'read output', 'confidence resize', '1-p', 'category mask',
        'segment() total')}
    # Reused scratch buffers, as segment() has them, where the engine provides them.
    workspace = ([postprocessing.Workspace()] if hasattr(postprocessing, 'Workspace')
                 else [])

    def staged(index: int) -> None:
        clock = [time.perf_counter()]

        def lap(name: str) -> None:
            clock.append(time.perf_counter())
            if record:
                timings[name].append(clock[-1] - clock[-2])

        pixels = preprocessing.warp_to_tensor(images[index], bare.width, bare.height)
        lap('warp')
        tensor = bare.interpreter.tensor(bare.input['index'])()[0]
        preprocessing.fill_tensor(pixels, tensor, bare.scale, bare.offset)
        del tensor
        lap('fill')
        bare.invoke()
        lap('invoke')
        output = bare.interpreter.get_tensor(bare.output['index'])[0]
        lap('read output')
        masks = postprocessing.confidence_masks(output, bare.activation, width, height)
        lap('confidence resize')
        if output.shape[-1] == 1:
            masks.insert(0, np.float32(1.0) - masks[0])
            lap('1-p')
        postprocessing.category_mask(output, bare.activation, width, height, *workspace)
        lap('category mask')

    def whole(index: int) -> None:
        start = time.perf_counter()
        segmenter.segment(images[index])
        if record:
            timings['segment() total'].append(time.perf_counter() - start)

    record = False
    for index in range(min(warmup, len(images))):
        staged(index)
        whole(index)
    record = True
    for _ in range(repeats):
        for index in range(len(images)):
            if index % 2:
                whole(index)
                staged(index)
            else:
                staged(index)
                whole(index)
    segmenter.close()
    return {name: values for name, values in timings.items() if values}


def profile_segment(model: str, frames: Sequence[np.ndarray], size: Tuple[int, int],
                    limit: int = 15) -> str:
    """Return cProfile's cumulative-time summary of ``segment()`` (both masks)."""
    images = resized(frames, size)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(resolve_model(model)), output_confidence_masks=True,
            output_category_mask=True, num_threads=DEFAULT_THREADS)) as segmenter:
        segmenter.segment(images[0])
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(4):
            for image in images:
                segmenter.segment(image)
        profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats('tottime').print_stats(limit)
    return stream.getvalue()


def ms(values: Sequence[float], quantile: float) -> float:
    """Return a quantile of durations in seconds, in milliseconds."""
    return float(np.quantile(np.asarray(values), quantile)) * 1e3


def machine_description() -> List[str]:
    """CPU model, core count and library versions, one markdown bullet each."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass

    def version(distribution: str) -> str:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return 'not installed'

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None
    return [
        'CPU: %s, %d logical cores (%s usable by this process)' % (
            cpu, os.cpu_count() or 0, affinity if affinity is not None else 'unknown'),
        'OS: %s %s' % (platform.system(), platform.release()),
        'Python %s, numpy %s, OpenCV %s, LiteRT (ai-edge-litert) %s, MediaPipe %s' % (
            platform.python_version(), np.__version__, cv2.__version__,
            version('ai-edge-litert'), version('mediapipe')),
        'OPENBLAS_CORETYPE: %s' % os.environ.get('OPENBLAS_CORETYPE', 'unset'),
    ]


def results_markdown(results: Dict[str, Dict[Tuple[int, int], Timings]]) -> List[str]:
    """Time table and ratio table of all models and sizes."""
    lines = ['| model | size | variant | median ms | p90 ms | frames timed |',
             '|---|---|---|---:|---:|---:|']
    for model, by_size in results.items():
        for (width, height), timings in by_size.items():
            for name in sorted(timings, key=variant_order):
                values = timings[name]
                lines.append('| %s | %dx%d | %s | %.2f | %.2f | %d |' % (
                    model, width, height, name.replace('t?', '(its own threads)'),
                    ms(values, 0.5), ms(values, 0.9), len(values)))
    lines += ['', 'Ratios of medians (same run, interleaved). Ours = both masks.', '',
              '| model | size | ours/invoke t1 | ours/invoke t2 | MediaPipe/ours t1 '
              '| MediaPipe/ours t2 | ours t2: confidence only / category only (ms) |',
              '|---|---|---:|---:|---:|---:|---|']
    for model, by_size in results.items():
        for (width, height), timings in by_size.items():
            median = {name: ms(values, 0.5) for name, values in timings.items()}
            lines.append('| %s | %dx%d | %.2f | %.2f | %.2f | %.2f | %.2f / %.2f |' % (
                model, width, height,
                median['ours both t1'] / median['invoke t1'],
                median['ours both t2'] / median['invoke t2'],
                median['mediapipe both t?'] / median['ours both t1'],
                median['mediapipe both t?'] / median['ours both t2'],
                median['ours confidence t2'], median['ours category t2']))
    return lines


def variant_order(name: str) -> Tuple[int, str]:
    """Sort key: invoke, ours both, ours single masks, MediaPipe."""
    for rank, prefix in enumerate(('invoke', 'ours both', 'ours confidence', 'ours category',
                                   'mediapipe')):
        if name.startswith(prefix):
            return rank, name
    return len(name), name


def targets_markdown(results: Dict[str, Dict[Tuple[int, int], Timings]]) -> List[str]:
    """Mark the issue's targets (640x480, both masks, default threads) met or not met."""
    lines = ['| model | target (640x480, both masks, %d threads) | measured | status |'
             % DEFAULT_THREADS, '|---|---|---:|---|']
    for model, by_size in results.items():
        timings = by_size[(640, 480)]
        median = {name: ms(values, 0.5) for name, values in timings.items()}
        ours = median['ours both t%d' % DEFAULT_THREADS]
        speedup = median['mediapipe both t?'] / ours
        overhead = ours / median['invoke t%d' % DEFAULT_THREADS]
        lines.append('| %s | ours >= %.1fx faster than MediaPipe Tasks | %.2fx | %s |' % (
            model, TARGET_VS_MEDIAPIPE, speedup,
            'met' if speedup >= TARGET_VS_MEDIAPIPE else 'not met'))
        lines.append('| %s | ours <= %.1fx bare invoke | %.2fx | %s |' % (
            model, TARGET_VS_INVOKE, overhead,
            'met' if overhead <= TARGET_VS_INVOKE else 'not met'))
    return lines


def stages_markdown(model: str, size: Tuple[int, int], stages: Timings) -> List[str]:
    """Per-stage medians of the both-masks path and their share of the staged sum."""
    total = sum(ms(values, 0.5) for name, values in stages.items()
                if name != 'segment() total')
    lines = ['Stages of `segment()` (both masks, %d threads), %s at %dx%d; medians, interleaved '
             'with whole `segment()` calls.' % (DEFAULT_THREADS, model, size[0], size[1]), '',
             '| stage | median ms | p90 ms | share of staged sum |', '|---|---:|---:|---:|']
    for name, values in stages.items():
        share = ('%.0f %%' % (100.0 * ms(values, 0.5) / total)
                 if name != 'segment() total' else '')
        lines.append('| %s | %.3f | %.3f | %s |'
                     % (name, ms(values, 0.5), ms(values, 0.9), share))
    lines.append('| sum of stages | %.3f | | 100 %% |' % total)
    lines += ['', '`category mask` is the align-corners interpolation of the raw tensor to the '
              'image size plus the 0.5 threshold (the threshold alone is a few percent of it); '
              '`1-p` is the background mask of the single-channel model.']
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=50,
                        help='distinct Megamind.avi frames (default 50)')
    parser.add_argument('--repeats', type=int, default=4,
                        help='passes over the frames per variant (default 4)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed warm-up frames per variant (default 5)')
    parser.add_argument('--settle-ms', type=float, default=2.0,
                        help='untimed pause after each MediaPipe call (default 2 ms)')
    parser.add_argument('--output', type=Path, default=PACKAGE_ROOT / 'docs' /
                        'engine_benchmark.md', help='markdown file to write')
    parser.add_argument('--append', action='store_true',
                        help='append this run to the output file instead of replacing it')
    parser.add_argument('--profile', action='store_true',
                        help='also print a cProfile summary of segment() at 640x480')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 4 frames, 1 repeat, 1 warm-up frame')
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeats, args.warmup = 4, 1, 1
    if args.frames < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error('--frames and --repeats must be at least 1, --warmup at least 0')

    started = time.perf_counter()
    frames = read_frames(args.frames)
    results = {}
    for model in MODELS:
        print('measuring %s ...' % model, file=sys.stderr, flush=True)
        results[model] = benchmark_model(model, frames, args.repeats, args.warmup,
                                         args.settle_ms / 1e3)
    print('timing the stages ...', file=sys.stderr, flush=True)
    stages = stage_breakdown(MODELS[0], frames, SIZES[0], args.repeats, args.warmup)
    elapsed = time.perf_counter() - started

    now = datetime.datetime.now().astimezone()
    run = ['## Run of %s' % now.strftime('%Y-%m-%d %H:%M %Z'), '']
    run += ['- %s' % line for line in machine_description()]
    smoke = ' (--quick smoke run)' if args.quick else ''
    run += ['- %d distinct Megamind.avi frames x %d repeats per variant, %d warm-up frames; '
            'whole run %.0f s%s' % (len(frames), args.repeats, args.warmup, elapsed, smoke), '']
    run += ['### Targets (issue 2)', ''] + targets_markdown(results) + ['']
    run += ['### Times per frame', ''] + results_markdown(results) + ['']
    run += ['### Where the time goes', ''] + stages_markdown(MODELS[0], SIZES[0], stages)
    text = '\n'.join(run) + '\n'
    print(text)

    if args.profile:
        print(profile_segment(MODELS[0], frames, SIZES[0]))

    header = '\n'.join([
        '# Engine benchmark', '',
        'Generated by `benchmarks/engine_benchmark.py` (`make bench`). In one process, on real '
        'Megamind.avi frames resized to 640x480 and 1280x720, for both legacy selfie models:',
        '',
        '- `invoke tN`: the bare LiteRT `Interpreter.invoke()` on the same model file with '
        'N threads, input already set (only the call is timed);',
        '- `ours both|confidence|category tN`: `ImageSegmenter.segment()` with N threads and '
        'both masks, confidence masks only or the category mask only (the latter two through '
        "`segment()`'s per-call output overrides);",
        "- `mediapipe both`: MediaPipe Tasks' `ImageSegmenter.segment()` (both masks) on the "
        'same model file and frames, including the `mp.Image` wrapping of the frame. MediaPipe '
        "Tasks' CPU inference gives the XNNPACK delegate 1 thread by default on desktop Linux "
        '(`GetXnnpackDefaultNumThreads()` in mediapipe/calculators/tensor/'
        'inference_calculator_utils.cc), so `MediaPipe/ours t1` is the like-for-like ratio and '
        '`MediaPipe/ours t2` what our default (2 threads) gains.', '',
        'The variants are interleaved round-robin per frame after a warm-up, so machine load '
        'affects all of them alike: on a shared machine the ratios are meaningful, absolute '
        'times less so. MediaPipe keeps working on its graph threads for a moment after '
        '`segment()` returns, which slowed whichever variant came next by up to 1 ms; an '
        'untimed pause (`--settle-ms`, 2 ms) follows each MediaPipe call.', '', ''])
    if args.append and args.output.exists():
        with args.output.open('a') as stream:
            stream.write('\n' + text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(header + text)
    print('wrote %s' % args.output, file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())

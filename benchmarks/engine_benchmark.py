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
and 1280x720, for both legacy selfie models and a generated 6-class softmax model. The
variants take turns in blocks of consecutive frames (the block order rotates), so each runs
in the steady state it has in a node, while machine load hits all of them alike: the ratios
between them are the figures to trust, absolute times on a shared machine are not. The process
keeps freed memory for reuse (``keep_freed_memory()``), as the node and the bag tools do; it
applies to MediaPipe's allocations as much as to ours.

    .venv/bin/python benchmarks/engine_benchmark.py [--frames N] [--repeats R] [--quick]
"""

import argparse
import cProfile
import io
from pathlib import Path
import pstats
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench_common import machine_description, ms, read_frames, resized
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions, keep_freed_memory
from image_segmenter_ros.engine import postprocessing, preprocessing
from image_segmenter_ros.engine.model_catalog import resolve_model
from image_segmenter_ros.engine.tflite_metadata import read_segmenter_metadata
import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - older robots ship tflite-runtime instead
    from tflite_runtime.interpreter import Interpreter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from tflite_test_models import build_model, TestModelSpec  # noqa: E402

GENERATED_MODEL = 'generated 6-class (256x256, softmax)'
GENERATED_SPEC = TestModelSpec(
    name='generated_6class', input_size=(256, 256), num_classes=6, activation='SOFTMAX',
    labels=['background', 'hair', 'body-skin', 'face-skin', 'clothes', 'others'], seed=11)
MODELS = ('selfie_segmentation', 'selfie_segmentation_landscape', GENERATED_MODEL)
SIZES = ((640, 480), (1280, 720))
THREADS = (1, 2)
DEFAULT_THREADS = 2
TARGET_MODEL, TARGET_SIZE = 'selfie_segmentation', '640x480'
TARGET_VS_MEDIAPIPE = 3.0
TARGET_VS_INVOKE = 1.5
MEDIAPIPE = 'mediapipe both'

Timings = Dict[str, List[float]]


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
        tensor = self.interpreter.tensor(self.input['index'])()[0]
        preprocessing.image_to_tensor(image, tensor, self.scale, self.offset)
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


def model_paths(work: Path) -> Dict[str, Path]:
    """Resolve the fetched models and write the generated one into ``work``."""
    paths = {model: resolve_model(model) for model in MODELS if model != GENERATED_MODEL}
    paths[GENERATED_MODEL] = work / (GENERATED_SPEC.name + '.tflite')
    paths[GENERATED_MODEL].write_bytes(build_model(GENERATED_SPEC))
    return paths


def run_interleaved(variants: Dict[str, Callable[[int], Optional[float]]], frame_count: int,
                    repeats: int, warmup: int, block: int,
                    after_block: Callable[[str], None]) -> Timings:
    """
    Time every variant on every frame, in turns of ``block`` consecutive frames.

    A variant is called with the frame index and returns its own measured seconds (or None
    to be timed here as a whole call). The order of the variants rotates from block to
    block so that none always follows the same neighbour.
    """
    names = list(variants)
    timings: Timings = {name: [] for name in names}
    for name in names:
        for index in range(min(warmup, frame_count)):
            variants[name](index)
        after_block(name)
    turn = 0
    for _ in range(repeats):
        for first in range(0, frame_count, block):
            shift = turn % len(names)
            for name in names[shift:] + names[:shift]:
                for index in range(first, min(first + block, frame_count)):
                    start = time.perf_counter()
                    measured = variants[name](index)
                    elapsed = time.perf_counter() - start
                    timings[name].append(elapsed if measured is None else measured)
                after_block(name)
            turn += 1
    return timings


def benchmark_model(model_path: Path, frames: Sequence[np.ndarray], repeats: int,
                    warmup: int, block: int, settle: float) -> Dict[str, Timings]:
    """Measure all variants of one model at every size."""
    ours = {threads: ImageSegmenter.create_from_options(ImageSegmenterOptions(
        model_path=str(model_path), output_confidence_masks=True, output_category_mask=True,
        num_threads=threads)) for threads in THREADS}
    bare = {threads: BareInvoke(model_path, threads) for threads in THREADS}
    import mediapipe as mp
    reference = mediapipe_segmenter(model_path)

    def after_block(name: str) -> None:
        # MediaPipe's graph threads finish up after segment() returns; let them settle so
        # that their work is not charged to the next variant.
        if name == MEDIAPIPE:
            time.sleep(settle)

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
                result = reference.segment(
                    mp.Image(image_format=mp.ImageFormat.SRGB, data=images[index]))
                result.category_mask.numpy_view()
                for mask in result.confidence_masks:
                    mask.numpy_view()

            variants = {MEDIAPIPE: mediapipe}
            for threads in THREADS:
                variants['invoke t%d' % threads] = invoke(threads)
                variants['ours both t%d' % threads] = segment(threads)
            variants['ours confidence t%d' % DEFAULT_THREADS] = segment(
                DEFAULT_THREADS, category=False)
            variants['ours category t%d' % DEFAULT_THREADS] = segment(
                DEFAULT_THREADS, confidence=False)
            results['%dx%d' % size] = run_interleaved(variants, len(images), repeats, warmup,
                                                      block, after_block)
    finally:
        reference.close()
        for segmenter in ours.values():
            segmenter.close()
    return results


def stage_breakdown(model_path: Path, frames: Sequence[np.ndarray], size: Tuple[int, int],
                    repeats: int, warmup: int) -> Timings:
    """
    Time each step of the engine's both-masks path with the public stage functions.

    The steps are the ones ``ImageSegmenter.segment()`` runs, on the same interpreter
    settings; ``segment()`` itself alternates with them for the total.
    """
    bare = BareInvoke(model_path, DEFAULT_THREADS)
    segmenter = ImageSegmenter.create_from_options(ImageSegmenterOptions(
        model_path=str(model_path), output_confidence_masks=True, output_category_mask=True,
        num_threads=DEFAULT_THREADS))
    images = resized(frames, size)
    width, height = size
    timings: Timings = {name: [] for name in (
        'input tensor', 'invoke', 'read output', 'confidence resize', '1-p', 'category mask',
        'segment() total')}
    workspace = postprocessing.Workspace()

    def staged(index: int, record: bool) -> None:
        clock = [time.perf_counter()]

        def lap(name: str) -> None:
            clock.append(time.perf_counter())
            if record:
                timings[name].append(clock[-1] - clock[-2])

        bare.set_input(images[index])
        lap('input tensor')
        bare.invoke()
        lap('invoke')
        output = bare.interpreter.get_tensor(bare.output['index'])[0]
        lap('read output')
        postprocessing.category_mask(output, bare.activation, width, height, workspace)
        lap('category mask')
        masks = postprocessing.confidence_masks(output, bare.activation, width, height)
        lap('confidence resize')
        if output.shape[-1] == 1:
            masks.insert(0, np.float32(1.0) - masks[0])
            lap('1-p')

    def whole(index: int, record: bool) -> None:
        start = time.perf_counter()
        segmenter.segment(images[index])
        if record:
            timings['segment() total'].append(time.perf_counter() - start)

    for index in range(min(warmup, len(images))):
        staged(index, False)
        whole(index, False)
    for _ in range(repeats):
        for step in (staged, whole):
            for index in range(len(images)):
                step(index, True)
    segmenter.close()
    return {name: values for name, values in timings.items() if values}


def profile_segment(model_path: Path, frames: Sequence[np.ndarray], size: Tuple[int, int],
                    limit: int = 12) -> str:
    """Return cProfile's own-time summary of ``segment()`` (both masks)."""
    images = resized(frames, size)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(model_path), output_confidence_masks=True,
            output_category_mask=True, num_threads=DEFAULT_THREADS)) as segmenter:
        segmenter.segment(images[0])
        profiler = cProfile.Profile()
        profiler.enable()
        for image in images * 4:
            segmenter.segment(image)
        profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.strip_dirs().sort_stats('tottime').print_stats(limit)
    text = stream.getvalue()
    return text[text.index('   ncalls'):].rstrip() if '   ncalls' in text else text


def summary(values: Sequence[float]) -> Dict[str, float]:
    """Median, p90 (milliseconds) and count of durations in seconds."""
    return {'median_ms': ms(values, 0.5), 'p90_ms': ms(values, 0.9), 'frames': len(values)}


def measure(frames: int = 40, repeats: int = 3, warmup: int = 5, block: int = 10,
            settle_ms: float = 2.0) -> Dict[str, Any]:
    """Run every model, size and variant, the stage breakdown and the profile."""
    started = time.perf_counter()
    keep_freed_memory()
    images = read_frames(frames)
    results: Dict[str, Any] = {'models': {}, 'settings': {
        'frames': len(images), 'repeats': repeats, 'warmup': warmup, 'block': block,
        'settle_ms': settle_ms}}
    with tempfile.TemporaryDirectory(prefix='engine_benchmark_') as work:
        paths = model_paths(Path(work))
        for model in MODELS:
            print('engine benchmark: %s ...' % model, file=sys.stderr, flush=True)
            timings = benchmark_model(paths[model], images, repeats, warmup, block,
                                      settle_ms / 1e3)
            results['models'][model] = {size: {name: summary(values) for name, values in
                                               by_variant.items()}
                                        for size, by_variant in timings.items()}
        print('engine benchmark: stages and profile ...', file=sys.stderr, flush=True)
        stages = stage_breakdown(paths[TARGET_MODEL], images, SIZES[0], repeats, warmup)
        results['stages'] = {name: summary(values) for name, values in stages.items()}
        results['profile'] = profile_segment(paths[TARGET_MODEL], images, SIZES[0])
    results['seconds'] = time.perf_counter() - started
    return results


def medians(results: Dict[str, Any], model: str, size: str) -> Dict[str, float]:
    """Median milliseconds per variant of one model at one size."""
    return {name: value['median_ms']
            for name, value in results['models'][model][size].items()}


def targets(results: Dict[str, Any]) -> List[Tuple[str, float, bool]]:
    """Check the engine goals: selfie model, 640x480, both masks, default threads."""
    median = medians(results, TARGET_MODEL, TARGET_SIZE)
    ours = median['ours both t%d' % DEFAULT_THREADS]
    speedup = median[MEDIAPIPE] / ours
    overhead = ours / median['invoke t%d' % DEFAULT_THREADS]
    return [('engine: ours >= %.0fx faster than MediaPipe Tasks' % TARGET_VS_MEDIAPIPE,
             speedup, speedup >= TARGET_VS_MEDIAPIPE),
            ('engine: ours <= %.1fx the bare invoke()' % TARGET_VS_INVOKE,
             overhead, overhead <= TARGET_VS_INVOKE)]


def variant_order(name: str) -> Tuple[int, str]:
    """Sort key: invoke, ours both, ours single masks, MediaPipe."""
    for rank, prefix in enumerate(('invoke', 'ours both', 'ours confidence', 'ours category',
                                   'mediapipe')):
        if name.startswith(prefix):
            return rank, name
    return len(name), name


def markdown(results: Dict[str, Any]) -> str:
    """Ratio table, time table, stage breakdown and profile summary."""
    t = DEFAULT_THREADS
    lines = ['Medians per frame; ours = `segment()` with both masks. Ratios are of medians '
             'from the same interleaved run.', '',
             '| model | frame | invoke t1 | invoke t%d | ours t1 | ours t%d | MediaPipe '
             '| MediaPipe / ours t%d | ours / invoke t1 | ours / invoke t%d |' % (t, t, t, t),
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for model, by_size in results['models'].items():
        for size in by_size:
            median = medians(results, model, size)
            lines.append('| %s | %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2fx '
                         '| %.2fx | %.2fx |' % (
                             model, size, median['invoke t1'], median['invoke t%d' % t],
                             median['ours both t1'], median['ours both t%d' % t],
                             median[MEDIAPIPE], median[MEDIAPIPE] / median['ours both t%d' % t],
                             median['ours both t1'] / median['invoke t1'],
                             median['ours both t%d' % t] / median['invoke t%d' % t]))
    lines += ['', 'All variants (milliseconds per frame; `confidence`/`category`: one kind of '
              "mask only, through `segment()`'s per-call overrides):", '',
              '| model | frame | variant | median | p90 | frames |',
              '|---|---|---|---:|---:|---:|']
    for model, by_size in results['models'].items():
        for size, variants in by_size.items():
            for name in sorted(variants, key=variant_order):
                value = variants[name]
                lines.append('| %s | %s | %s | %.2f | %.2f | %d |' % (
                    model, size, name, value['median_ms'], value['p90_ms'], value['frames']))
    stages = results['stages']
    total = sum(value['median_ms'] for name, value in stages.items()
                if name != 'segment() total')
    lines += ['', 'Stages of `segment()` (%s, %s, both masks, %d threads), timed one by one '
              'with the public stage functions; medians:' % (TARGET_MODEL, TARGET_SIZE, t), '',
              '| stage | median ms | p90 ms | share of the staged sum |',
              '|---|---:|---:|---:|']
    for name, value in stages.items():
        share = ('' if name == 'segment() total'
                 else '%.0f %%' % (100.0 * value['median_ms'] / total))
        lines.append('| %s | %.3f | %.3f | %s |'
                     % (name, value['median_ms'], value['p90_ms'], share))
    lines += ['| sum of stages | %.3f | | 100 %% |' % total, '',
              'Profile of `segment()` (cProfile, own time, %s at %s; OpenCV, NumPy, numba and '
              'LiteRT calls are single entries):' % (TARGET_MODEL, TARGET_SIZE), '', '```',
              results['profile'], '```']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=40,
                        help='distinct Megamind.avi frames (default 40)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='passes over the frames per variant (default 3)')
    parser.add_argument('--block', type=int, default=10,
                        help='consecutive frames per turn of a variant (default 10)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 4 frames, 1 repeat, 1 warm-up frame')
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeats = 4, 1
    results = measure(args.frames, args.repeats, warmup=1 if args.quick else 5,
                      block=args.block)
    print('\n'.join('- %s' % line for line in machine_description()))
    print()
    print(markdown(results))
    for name, value, met in targets(results):
        print('%s: %.2fx, %s' % (name, value, 'met' if met else 'not met'))
    return 0


if __name__ == '__main__':
    sys.exit(main())

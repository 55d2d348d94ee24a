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
and 1280x720, for the official Tasks models (selfie_segmenter, its landscape variant,
hair_segmenter, deeplab_v3; those not fetched are skipped and named), both legacy selfie
models and a generated 6-class softmax model. The variants take turns in blocks of consecutive
frames (the block order rotates), so each runs in the steady state it has in a node, while
machine load hits all of them alike: the ratios between them are the figures to trust, absolute
times on a shared machine are not. Load that changes over minutes does not hit them alike, so
the comparisons run in three rounds over all models, minutes apart: the medians pool the
rounds' samples, and the targets show each round's back-to-back ratio too. Beside them, the
time to write the masks' bytes alone (as many float masks as classes and the category mask,
into reused memory) is the memory floor of any implementation.

A second part calls every model at a steady 30 Hz, as a camera does, and back to back, in
alternating blocks: time per call and CPU time per frame of the whole process (every thread,
MediaPipe's graph threads included). A plain single-threaded compute loop of the same length
shows what this machine adds to any work started from idle (its floor).

The process keeps freed memory for reuse (``keep_freed_memory()``) and runs OpenCV on the
calling thread (``opencv_on_calling_thread()``), as the node does; freed memory is kept for
MediaPipe's allocations as much as for ours.

    .venv/bin/python benchmarks/engine_benchmark.py [--frames N] [--repeats R] [--rounds K]
        [--quick]
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
from image_segmenter_ros.engine import opencv_on_calling_thread
from image_segmenter_ros.engine import postprocessing, preprocessing
from image_segmenter_ros.engine.model_catalog import ModelNotFoundError, resolve_model
from image_segmenter_ros.engine.tflite_metadata import read_segmenter_metadata
from image_segmenter_ros.node.parameters import BY_NAME
import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - older robots ship tflite-runtime instead
    from tflite_runtime.interpreter import Interpreter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from tflite_test_models import build_model, TestModelSpec  # noqa: E402
import yaml  # noqa: E402


GENERATED_MODEL = 'generated 6-class (256x256, softmax)'
GENERATED_SPEC = TestModelSpec(
    name='generated_6class', input_size=(256, 256), num_classes=6, activation='SOFTMAX',
    labels=['background', 'hair', 'body-skin', 'face-skin', 'clothes', 'others'], seed=11)
TASKS_MODELS = ('selfie_segmenter', 'selfie_segmenter_landscape', 'hair_segmenter',
                'deeplab_v3')
LEGACY_MODELS = ('selfie_segmentation', 'selfie_segmentation_landscape')
MODELS = TASKS_MODELS + LEGACY_MODELS + (GENERATED_MODEL,)
SIZES = ((640, 480), (1280, 720))
THREADS = (1, 2)
OUTPUTS = ('both', 'confidence', 'category')
DEFAULT_THREADS = 2  # the back-to-back targets
NODE_THREADS = BY_NAME['num_threads'].default  # the node's default, for models without config
CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config'
PACED_HZ = 30.0
MEDIAPIPE = 'mediapipe both'
WRITE_MASKS = 'write masks'
COMPUTE_LOOP = 'compute loop'
# The work any engine does on a frame, with the node's threads: the input tensor filled as ours
# fills it, the bare invoke(), and the output masks' bytes written.
INVOKE_AND_WRITE = 'invoke and write masks'

# Targets, at 640x480 (medians of one run).
TARGET_MODEL, TARGET_SIZE = 'selfie_segmentation', '640x480'
TARGET_VS_MEDIAPIPE = 3.0  # the legacy selfie model, since the start
TARGET_VS_INVOKE = 1.5
VS_MEDIAPIPE = {'selfie_segmenter': 3.0, 'selfie_segmenter_landscape': 3.0,
                'deeplab_v3': 3.0, 'hair_segmenter': 2.0}
CATEGORY_VS_INVOKE = 1.3
DEEPLAB_VS_INVOKE = 2.0
PACED_VS_B2B = 1.2
PACED_CPU_VS_MEDIAPIPE = 0.5

Timings = Dict[str, List[float]]


class BareInvoke:
    """A LiteRT interpreter on the model file; only ``invoke()`` is timed."""

    def __init__(self, model_path: Path, num_threads: int):
        model = model_path.read_bytes()
        metadata = read_segmenter_metadata(model)
        self.activation = metadata.activation
        self.zero_alpha = len(metadata.labels) == 2 and metadata.labels[1] == 'hair'
        self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[-1]
        self.height, self.width, self.channels = (int(v) for v in self.input['shape'][1:4])
        self.scale, self.offset = preprocessing.value_range_transform(metadata.normalization)

    def set_input(self, image: np.ndarray) -> None:
        """Preprocess a frame exactly as the engine does and leave it in the input tensor."""
        if self.channels == 4:
            pixels, order = preprocessing.four_channel_pixels(image, self.width, self.height,
                                                              self.zero_alpha)
            tensor = self.interpreter.tensor(self.input['index'])()[0]
            preprocessing.fill_four_channel_tensor(pixels, order, tensor, self.scale,
                                                   self.offset)
        else:
            tensor = self.interpreter.tensor(self.input['index'])()[0]
            preprocessing.image_to_tensor(image, tensor, self.scale, self.offset)
        del tensor

    def invoke(self) -> None:
        """Run the model on the current input."""
        self.interpreter.invoke()


class ComputeLoop:
    """
    Plain single-threaded arithmetic on a cache-sized buffer, lasting about ``seconds``.

    Called at 30 Hz and back to back, it shows what this machine adds to any work that
    starts from idle (caches, frequency, the virtual CPU's wake-up): the floor of the paced
    figures.
    """

    def __init__(self, seconds: float):
        self.source = np.random.default_rng(0).random(16384).astype(np.float32)
        self.target = np.empty_like(self.source)
        start = time.thread_time()  # CPU time: calibrated alike on a busy machine
        for _ in range(400):
            np.sqrt(self.source, out=self.target)
        each = (time.thread_time() - start) / 400
        self.iterations = max(1, int(round(seconds / each)))

    def __call__(self, index: int) -> None:
        """Run the loop once."""
        for _ in range(self.iterations):
            np.sqrt(self.source, out=self.target)


def node_threads(model: str) -> int:
    """Return the node's inference threads for a model: its config file's, else the default."""
    path = CONFIG_DIR / ('%s.yaml' % model)
    if not path.is_file():
        return NODE_THREADS
    values = yaml.safe_load(path.read_text())['/**']['ros__parameters']
    return int(values.get('num_threads', NODE_THREADS))


def thread_count(threads: int) -> str:
    """Return '1 thread' or 'n threads'."""
    return '%d thread%s' % (threads, '' if threads == 1 else 's')


def mediapipe_segmenter(model_path: Path):
    """Return MediaPipe Tasks' ImageSegmenter (both masks, IMAGE mode) on the model file."""
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import image_segmenter as mp_segmenter
    return mp_segmenter.ImageSegmenter.create_from_options(
        mp_segmenter.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            output_confidence_masks=True, output_category_mask=True))


def model_paths(work: Path) -> Tuple[Dict[str, Path], Dict[str, str]]:
    """Resolve the fetched models, write the generated one into ``work``; name the missing."""
    paths, missing = {}, {}
    for model in MODELS:
        if model == GENERATED_MODEL:
            paths[model] = work / (GENERATED_SPEC.name + '.tflite')
            paths[model].write_bytes(build_model(GENERATED_SPEC))
            continue
        try:
            paths[model] = resolve_model(model)
        except ModelNotFoundError as error:
            missing[model] = str(error)
    return paths, missing


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


def mask_writer(masks: int, size: Tuple[int, int]) -> Callable[[int], None]:
    """Write ``masks`` float masks and a category mask of ``size``: the bytes alone."""
    width, height = size

    def call(index: int) -> None:
        written = [np.empty((height, width), np.float32) for _ in range(masks)]
        written.append(np.empty((height, width), np.uint8))
        for mask in written:  # all alive at once, as a result's masks are
            mask.fill(1)
    return call


class Candidates:
    """Our segmenters, bare interpreters and MediaPipe's segmenter on one model file."""

    def __init__(self, model_path: Path):
        self.ours = {threads: ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(model_path), output_confidence_masks=True,
            output_category_mask=True, num_threads=threads)) for threads in THREADS}
        self.bare = {threads: BareInvoke(model_path, threads) for threads in THREADS}
        self.reference = mediapipe_segmenter(model_path)
        self.masks = len(self.ours[THREADS[0]].labels)

    def variants(self, images: Sequence[np.ndarray]) -> Dict[str, Callable[[int], Any]]:
        """Return every variant on ``images``, called with a frame index."""
        import mediapipe as mp

        def invoke(threads):
            def call(index):
                self.bare[threads].set_input(images[index])
                start = time.perf_counter()
                self.bare[threads].invoke()
                return time.perf_counter() - start
            return call

        def segment(threads, outputs):
            segmenter = self.ours[threads]
            confidence, category = outputs != 'category', outputs != 'confidence'
            return lambda index: segmenter.segment(
                images[index], output_confidence_masks=confidence,
                output_category_mask=category) and None

        def mediapipe(index):
            result = self.reference.segment(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=images[index]))
            result.category_mask.numpy_view()
            for mask in result.confidence_masks:
                mask.numpy_view()

        variants = {MEDIAPIPE: mediapipe}
        for threads in THREADS:
            variants['invoke t%d' % threads] = invoke(threads)
            for outputs in OUTPUTS:
                variants['ours %s t%d' % (outputs, threads)] = segment(threads, outputs)
        return variants

    def close(self) -> None:
        """Release MediaPipe's graph and our segmenters."""
        self.reference.close()
        for segmenter in self.ours.values():
            segmenter.close()


def benchmark_model(candidates: Candidates, frames: Sequence[np.ndarray], repeats: int,
                    warmup: int, block: int, settle: float) -> Dict[str, Timings]:
    """Measure all variants of one model at every size."""
    def after_block(name: str) -> None:
        # MediaPipe's graph threads finish up after segment() returns; let them settle so
        # that their work is not charged to the next variant.
        if name == MEDIAPIPE:
            time.sleep(settle)

    results = {}
    for size in SIZES:
        images = resized(frames, size)
        variants = candidates.variants(images)
        variants[WRITE_MASKS] = mask_writer(candidates.masks, size)
        results['%dx%d' % size] = run_interleaved(variants, len(images), repeats, warmup,
                                                  block, after_block)
    return results


PacedSamples = Dict[str, Dict[str, Any]]


def paced_model(candidates: Candidates, images: Sequence[np.ndarray], loop_seconds: float,
                threads: int, block: int, turns: int, samples: PacedSamples,
                hz: float = PACED_HZ) -> PacedSamples:
    """
    Call each variant at ``hz`` and back to back, in alternating blocks of ``block`` frames.

    The first call of every block (it follows another variant or pacing) is not counted.
    Adds the call times and the process's CPU time (all threads; paced calls over their
    whole periods) to ``samples``, which may hold those of earlier runs, and returns it.
    """
    every = candidates.variants(images)
    variants = {name: every[name] for name in (
        MEDIAPIPE, 'invoke t1', 'invoke t2', 'ours both t1', 'ours both t2')}
    variants[COMPUTE_LOOP] = ComputeLoop(loop_seconds)
    bare, write = candidates.bare[threads], mask_writer(candidates.masks, images[0].shape[1::-1])

    def invoke_and_write(index: int) -> None:
        bare.set_input(images[index])
        bare.invoke()
        write(index)
    variants[INVOKE_AND_WRITE] = invoke_and_write
    for name in variants:
        samples.setdefault(name, {'paced': [], 'b2b': [], 'paced_cpu': 0.0, 'b2b_cpu': 0.0})
    names = list(variants)
    for name in names:
        for index in range(3):
            variants[name](index % len(images))
    for turn in range(turns):
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            for paced in (True, False):
                times, cpu = run_block(variants[name], len(images), block,
                                       hz if paced else None)
                kind = 'paced' if paced else 'b2b'
                samples[name][kind] += times
                samples[name][kind + '_cpu'] += cpu
    return samples


def paced_summary(samples: PacedSamples) -> Dict[str, Dict[str, float]]:
    """Median time per call and CPU per frame, paced and back to back, per variant."""
    out = {}
    for name, values in samples.items():
        count = max(1, len(values['paced']))
        out[name] = {'paced_ms': ms(values['paced'], 0.5),
                     'paced_p90_ms': ms(values['paced'], 0.9),
                     'b2b_ms': ms(values['b2b'], 0.5),
                     'paced_cpu_ms': 1e3 * values['paced_cpu'] / count,
                     'b2b_cpu_ms': 1e3 * values['b2b_cpu'] / max(1, len(values['b2b'])),
                     'frames': len(values['paced'])}
    return out


def run_block(variant: Callable[[int], Any], frame_count: int, block: int,
              hz: Optional[float]) -> Tuple[List[float], float]:
    """Call a variant ``block`` + 1 times, at ``hz`` or back to back; its times and CPU."""
    period = 1.0 / hz if hz else 0.0
    times = []
    next_start = time.perf_counter() + period
    cpu_start = 0.0
    for index in range(block + 1):
        if hz:
            time.sleep(max(0.0, next_start - time.perf_counter()))
            next_start += period
        if index == 1:
            cpu_start = time.process_time()
        start = time.perf_counter()
        variant(index % frame_count)
        if index:
            times.append(time.perf_counter() - start)
    if hz:  # the last period belongs to the last call
        time.sleep(max(0.0, next_start - time.perf_counter()))
    return times, time.process_time() - cpu_start


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
        'input tensor', 'invoke', 'category mask', 'confidence masks', '1-p',
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
        output = bare.interpreter.tensor(bare.output['index'])()[0]
        postprocessing.category_mask(output, bare.activation, width, height, workspace)
        lap('category mask')
        masks, _ = postprocessing.confidence_masks(output, bare.activation, width, height,
                                                   workspace)
        del output
        lap('confidence masks')
        if len(masks) == 1:
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


def measure(frames: int = 16, repeats: int = 3, warmup: int = 4, block: int = 8,
            settle_ms: float = 2.0, paced_block: int = 12, paced_rounds: int = 3,
            rounds: int = 3) -> Dict[str, Any]:
    """
    Run every model, size and variant, the 30 Hz calls, the stage breakdowns and a profile.

    The comparisons, back to back and at 30 Hz, run in ``rounds`` rounds, each over every
    model in turn, so that they lie minutes apart; the medians are of all rounds' samples, and
    each round's back-to-back median is kept for the spread.
    """
    started = time.perf_counter()
    keep_freed_memory()
    opencv_on_calling_thread()
    images = read_frames(frames)
    settings = {'frames': len(images), 'repeats': repeats, 'warmup': warmup, 'block': block,
                'settle_ms': settle_ms, 'paced_hz': PACED_HZ, 'paced_block': paced_block,
                'paced_rounds': paced_rounds, 'rounds': rounds,
                'node_threads': {model: node_threads(model) for model in MODELS}}
    results: Dict[str, Any] = {'models': {}, 'rounds': {}, 'paced': {}, 'stages': {},
                               'settings': settings}
    pooled: Dict[str, Dict[str, Timings]] = {}
    paced: Dict[str, PacedSamples] = {}
    loops: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix='engine_benchmark_') as work:
        paths, results['missing'] = model_paths(Path(work))
        vga = resized(images, SIZES[0])
        for round_index in range(rounds):
            for model in paths:
                print('engine benchmark: %s, round %d of %d ...' % (
                    model, round_index + 1, rounds), file=sys.stderr, flush=True)
                candidates = Candidates(paths[model])
                try:
                    timings = benchmark_model(candidates, images, repeats, warmup, block,
                                              settle_ms / 1e3)
                    for size, by_variant in timings.items():
                        for name, values in by_variant.items():
                            pooled.setdefault(model, {}).setdefault(size, {}).setdefault(
                                name, []).extend(values)
                            results['rounds'].setdefault(model, {}).setdefault(
                                size, {}).setdefault(name, []).append(ms(values, 0.5))
                    if round_index == 0:  # the same loop length in every round
                        loops[model] = ms(timings[TARGET_SIZE][
                            'ours both t%d' % node_threads(model)], 0.5) / 1e3
                    paced_model(candidates, vga, loops[model], node_threads(model),
                                paced_block, paced_rounds, paced.setdefault(model, {}))
                finally:
                    candidates.close()
        results['models'] = {model: {size: {name: summary(values)
                                            for name, values in by_variant.items()}
                                     for size, by_variant in by_size.items()}
                             for model, by_size in pooled.items()}
        results['paced'] = {model: paced_summary(samples) for model, samples in paced.items()}
        print('engine benchmark: stages and profile ...', file=sys.stderr, flush=True)
        for model in (TARGET_MODEL, 'deeplab_v3', 'hair_segmenter'):
            if model in paths:
                stages = stage_breakdown(paths[model], images, SIZES[0], repeats, warmup)
                results['stages'][model] = {name: summary(values)
                                            for name, values in stages.items()}
        results['profile_model'] = 'deeplab_v3' if 'deeplab_v3' in paths else TARGET_MODEL
        results['profile'] = profile_segment(paths[results['profile_model']], images,
                                             SIZES[0])
    results['seconds'] = time.perf_counter() - started
    return results


def medians(results: Dict[str, Any], model: str, size: str) -> Dict[str, float]:
    """Median milliseconds per variant of one model at one size."""
    return {name: value['median_ms']
            for name, value in results['models'][model][size].items()}


def spread(results: Dict[str, Any], model: str, numerator: str, denominator: str) -> str:
    """Return each round's ratio of two variants at 640x480, or '' after a single round."""
    rounds = results.get('rounds', {}).get(model, {}).get(TARGET_SIZE, {})
    if len(rounds.get(numerator, ())) < 2:
        return ''
    ratios = [a / b for a, b in zip(rounds[numerator], rounds[denominator])]
    return 'rounds %s' % ', '.join('%.2fx' % ratio for ratio in ratios)


def with_notes(value: str, *notes: str) -> str:
    """Return ``value (note; note)`` with the non-empty notes, or the value alone."""
    notes = tuple(note for note in notes if note)
    return '%s (%s)' % (value, '; '.join(notes)) if notes else value


Target = Tuple[str, str, bool]


def targets(results: Dict[str, Any]) -> List[Target]:
    """Check the engine goals at 640x480: (target, measured with its floor, met)."""
    out: List[Target] = []
    models = results['models']
    t = DEFAULT_THREADS
    if TARGET_MODEL in models:
        median = medians(results, TARGET_MODEL, TARGET_SIZE)
        speedup = median[MEDIAPIPE] / median['ours both t%d' % t]
        overhead = median['ours both t%d' % t] / median['invoke t%d' % t]
        out += [('engine %s: ours >= %.0fx faster than MediaPipe Tasks'
                 % (TARGET_MODEL, TARGET_VS_MEDIAPIPE), '%.2fx' % speedup,
                 speedup >= TARGET_VS_MEDIAPIPE),
                ('engine %s: ours <= %.1fx the bare invoke()' % (TARGET_MODEL, TARGET_VS_INVOKE),
                 '%.2fx' % overhead, overhead <= TARGET_VS_INVOKE)]
    for model, limit in VS_MEDIAPIPE.items():
        if model in models:
            median = medians(results, model, TARGET_SIZE)
            speedup = median[MEDIAPIPE] / median['ours both t%d' % t]
            # No engine on the same inference can beat MediaPipe by more than this.
            bound = median[MEDIAPIPE] / median['invoke t%d' % t]
            out.append(('engine %s, both masks, %d threads: MediaPipe / ours >= %.0fx'
                        % (model, t, limit),
                        with_notes('%.2fx' % speedup,
                                   spread(results, model, MEDIAPIPE, 'ours both t%d' % t),
                                   'bound: MediaPipe / invoke() %.2fx' % bound),
                        speedup >= limit))
    for model in TASKS_MODELS + LEGACY_MODELS:
        if model in models:
            median = medians(results, model, TARGET_SIZE)
            category, invoke = 'ours category t%d' % t, 'invoke t%d' % t
            ratio = median[category] / median[invoke]
            out.append(('engine %s, category mask only: ours <= %.1fx invoke()'
                        % (model, CATEGORY_VS_INVOKE),
                        with_notes('%.2fx' % ratio, spread(results, model, category, invoke)),
                        ratio <= CATEGORY_VS_INVOKE))
    if 'deeplab_v3' in models:
        median = medians(results, 'deeplab_v3', TARGET_SIZE)
        invoke = median['invoke t%d' % t]
        ratio = median['ours both t%d' % t] / invoke
        floor = (invoke + median[WRITE_MASKS]) / invoke
        out.append(('engine deeplab_v3, 21 confidence masks and the category mask: ours <= '
                    '%.0fx invoke()' % DEEPLAB_VS_INVOKE,
                    with_notes('%.2fx' % ratio, spread(results, 'deeplab_v3',
                                                       'ours both t%d' % t, 'invoke t%d' % t),
                               'floor: invoke + writing the masks %.2fx' % floor),
                    ratio <= DEEPLAB_VS_INVOKE))
    for model, paced in results.get('paced', {}).items():
        threads = node_threads(model)
        ours = paced['ours both t%d' % threads]
        ratio = ours['paced_ms'] / ours['b2b_ms']
        floors = [(name, paced[name]['paced_ms'] / paced[name]['b2b_ms'])
                  for name in (COMPUTE_LOOP, INVOKE_AND_WRITE)]
        out.append(("engine %s at %.0f Hz (%s, the node's setting): time per call <= "
                    '%.1fx back to back' % (model, PACED_HZ, thread_count(threads),
                                            PACED_VS_B2B),
                    '%.2fx (floors: %s)' % (ratio, ', '.join('%s %.2fx' % floor
                                                             for floor in floors)),
                    ratio <= PACED_VS_B2B))
        mediapipe_cpu = paced[MEDIAPIPE]['paced_cpu_ms']
        cpu = ours['paced_cpu_ms'] / mediapipe_cpu
        # The bare invoke() with the same threads: no engine on this inference spends less.
        bound = paced['invoke t%d' % threads]['paced_cpu_ms'] / mediapipe_cpu
        out.append(("engine %s at %.0f Hz: CPU per frame <= %.1fx MediaPipe's"
                    % (model, PACED_HZ, PACED_CPU_VS_MEDIAPIPE),
                    '%.2fx (%.1f / %.1f ms; floor: invoke() alone %.2fx)'
                    % (cpu, ours['paced_cpu_ms'], mediapipe_cpu, bound),
                    cpu <= PACED_CPU_VS_MEDIAPIPE))
    return out


def variant_order(name: str) -> Tuple[int, str]:
    """Sort key: invoke, ours both, ours single masks, MediaPipe, the memory floor."""
    for rank, prefix in enumerate(('invoke', 'ours both', 'ours confidence', 'ours category',
                                   'mediapipe', WRITE_MASKS)):
        if name.startswith(prefix):
            return rank, name
    return len(name), name


def short_name(model: str) -> str:
    """Return the model's name without the generated model's description."""
    return model.split(' (')[0]


def readme_table(results: Dict[str, Any]) -> str:
    """One row per model at 640x480: the compact table for the README."""
    t = DEFAULT_THREADS
    lines = ['| model (640x480, %d threads) | invoke() | ours, both masks | MediaPipe Tasks '
             '| MediaPipe / ours | ours / invoke() | category only / invoke() '
             '| CPU per frame at %.0f Hz, ours / MediaPipe |' % (t, PACED_HZ),
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for model in results['models']:
        median = medians(results, model, TARGET_SIZE)
        paced = results.get('paced', {}).get(model)
        cpu = ('%.1f / %.1f ms' % (paced['ours both t%d' % node_threads(model)]['paced_cpu_ms'],
                                   paced[MEDIAPIPE]['paced_cpu_ms']) if paced else 'n/a')
        ours = median['ours both t%d' % t]
        invoke = median['invoke t%d' % t]
        lines.append('| %s | %.2f ms | %.2f ms | %.2f ms | %.2fx | %.2fx | %.2fx | %s |' % (
            short_name(model), invoke, ours, median[MEDIAPIPE], median[MEDIAPIPE] / ours,
            ours / invoke, median['ours category t%d' % t] / invoke, cpu))
    return '\n'.join(lines)


def markdown(results: Dict[str, Any]) -> str:
    """Summary, ratio table, 30 Hz table, every variant, stage breakdowns and profile."""
    t = DEFAULT_THREADS
    lines = ["Summary (medians; the 30 Hz column with the node's setting of inference threads "
             'for the model: %s):' % ', '.join(
                 '%s %d' % (short_name(model), node_threads(model))
                 for model in results['models']),
             '',
             readme_table(results), '']
    for model, reason in results.get('missing', {}).items():
        lines.append('- %s: not measured: %s' % (model, reason))
    lines += ['', 'Medians per frame of %d rounds minutes apart, each an interleaved run; '
              'ours = `segment()` with both masks unless named. "write masks": writing the '
              'bytes of the masks alone (as many float masks as ours returns, and the category '
              'mask) into reused memory, the floor of any implementation.'
              % results['settings'].get('rounds', 1), '',
              '| model | frame | invoke t1 | invoke t%d | ours t1 | ours t%d | category t%d '
              '| confidence t%d | MediaPipe | write masks | MediaPipe / ours t%d '
              '| ours / invoke t1 | ours / invoke t%d | category / invoke t%d |'
              % (t, t, t, t, t, t, t),
              '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for model, by_size in results['models'].items():
        for size in by_size:
            median = medians(results, model, size)
            lines.append(
                '| %s | %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms '
                '| %.2f ms | %.2f ms | %.2fx | %.2fx | %.2fx | %.2fx |' % (
                    short_name(model), size, median['invoke t1'], median['invoke t%d' % t],
                    median['ours both t1'], median['ours both t%d' % t],
                    median['ours category t%d' % t], median['ours confidence t%d' % t],
                    median[MEDIAPIPE], median[WRITE_MASKS],
                    median[MEDIAPIPE] / median['ours both t%d' % t],
                    median['ours both t1'] / median['invoke t1'],
                    median['ours both t%d' % t] / median['invoke t%d' % t],
                    median['ours category t%d' % t] / median['invoke t%d' % t]))
    paced = results.get('paced', {})
    if paced:
        settings = results['settings']
        lines += ['', 'At a steady %.0f Hz (640x480, both masks), against back to back, in '
                  'alternating blocks of %d frames, %d turns in each of %d rounds: median time '
                  'per call, and CPU time per frame of the whole process (all threads). The '
                  'compute loop is plain single-threaded arithmetic as long as ours back to back '
                  "with the node's setting of threads for the model: the machine's own cost of "
                  "starting work from idle. 'invoke and write masks' is the work any engine does "
                  "on a frame, with the node's threads: the input tensor filled as ours fills "
                  "it, the bare invoke(), and the masks' bytes written."
                  % (PACED_HZ, settings['paced_block'], settings['paced_rounds'],
                     settings.get('rounds', 1)), '',
                  '| model | variant | %.0f Hz | back to back | %.0f Hz / back to back '
                  '| CPU per frame at %.0f Hz | CPU per frame back to back |'
                  % (PACED_HZ, PACED_HZ, PACED_HZ),
                  '|---|---|---:|---:|---:|---:|---:|']
        for model, variants in paced.items():
            for name, value in variants.items():
                lines.append('| %s | %s | %.2f ms | %.2f ms | %.2fx | %.2f ms | %.2f ms |' % (
                    short_name(model), name, value['paced_ms'], value['b2b_ms'],
                    value['paced_ms'] / value['b2b_ms'], value['paced_cpu_ms'],
                    value['b2b_cpu_ms']))
    lines += ['', 'All variants (milliseconds per frame; `confidence`/`category`: one kind of '
              "mask only, through `segment()`'s per-call overrides):", '',
              '| model | frame | variant | median | p90 | frames |',
              '|---|---|---|---:|---:|---:|']
    for model, by_size in results['models'].items():
        for size, variants in by_size.items():
            for name in sorted(variants, key=variant_order):
                value = variants[name]
                lines.append('| %s | %s | %s | %.2f | %.2f | %d |' % (
                    short_name(model), size, name, value['median_ms'], value['p90_ms'],
                    value['frames']))
    for model, stages in results['stages'].items():
        total = sum(value['median_ms'] for name, value in stages.items()
                    if name != 'segment() total')
        lines += ['', 'Stages of `segment()` (%s, %s, both masks, %d threads), timed one by '
                  'one with the public stage functions; medians:' % (model, TARGET_SIZE, t),
                  '', '| stage | median ms | p90 ms | share of the staged sum |',
                  '|---|---:|---:|---:|']
        for name, value in stages.items():
            share = ('' if name == 'segment() total'
                     else '%.0f %%' % (100.0 * value['median_ms'] / total))
            lines.append('| %s | %.3f | %.3f | %s |'
                         % (name, value['median_ms'], value['p90_ms'], share))
        lines.append('| sum of stages | %.3f | | 100 %% |' % total)
    lines += ['', 'Profile of `segment()` (cProfile, own time, %s at %s; OpenCV, NumPy, numba '
              'and LiteRT calls are single entries):' % (results['profile_model'], TARGET_SIZE),
              '', '```', results['profile'], '```']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--frames', type=int, default=16,
                        help='distinct Megamind.avi frames (default 16)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='passes over the frames per variant (default 3)')
    parser.add_argument('--block', type=int, default=8,
                        help='consecutive frames per turn of a variant (default 8)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='rounds of the comparisons over every model '
                             '(default 3)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 4 frames, 1 repeat, 1 warm-up frame, 2 rounds')
    args = parser.parse_args(argv)
    results = (measure(**QUICK) if args.quick else
               measure(args.frames, args.repeats, block=args.block, rounds=args.rounds))
    print('\n'.join('- %s' % line for line in machine_description()))
    print()
    print(markdown(results))
    for name, value, met in targets(results):
        print('%s: %s, %s' % (name, value, 'met' if met else 'not met'))
    return 0


# The smoke run's settings (run_benchmarks --quick too): figures not meaningful.
QUICK = {'frames': 4, 'repeats': 1, 'warmup': 1, 'paced_block': 3, 'paced_rounds': 1,
         'rounds': 2}


if __name__ == '__main__':
    sys.exit(main())

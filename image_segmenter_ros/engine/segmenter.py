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
The Image Segmenter engine: MediaPipe's ``ImageSegmenter`` API and results on LiteRT.

Pure Python (no ROS): preprocessing, inference and postprocessing reproduce MediaPipe Tasks
on CPU; running modes, timestamp rules and error types follow MediaPipe too. Deliberate
differences are listed in the README ("Where the engine differs from MediaPipe").
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
import enum
import importlib.metadata
import logging
from pathlib import Path
import threading
from typing import Callable, List, Optional, Sequence, Tuple
import weakref

import numpy as np

from . import postprocessing, preprocessing
from .model_catalog import resolve_model
from .tflite_metadata import Activation, is_tflite_model, read_segmenter_metadata

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - older robots ship tflite-runtime instead
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        raise ImportError('LiteRT is not installed (rosdep has no key for it): '
                          'pip install -r requirements-robot.txt, or tflite-runtime where no '
                          'ai-edge-litert wheel fits.') from None

_LOGGER = logging.getLogger(__name__)
_SINGLE_CHANNEL_BACKGROUND = 'background'
_MAX_SIDE = 32767  # OpenCV's remap addresses pixels with 16-bit coordinates


class RunningMode(enum.Enum):
    """How frames are fed: single images, video frames in order, or a live stream."""

    IMAGE = 'IMAGE'
    VIDEO = 'VIDEO'
    LIVE_STREAM = 'LIVE_STREAM'

    @property
    def _description(self) -> str:
        return self.value.lower().replace('_', ' ') + ' mode'


@dataclass
class ImageSegmenterResult:
    """
    Masks at the input image's size; a field is None when it was not requested.

    ``confidences_finite`` (not in MediaPipe) tells whether the confidence masks returned hold
    no NaN or infinity, which a model can produce; None without confidence masks.
    """

    confidence_masks: Optional[List[np.ndarray]] = None
    category_mask: Optional[np.ndarray] = None
    confidences_finite: Optional[bool] = None


ResultCallback = Callable[[ImageSegmenterResult, np.ndarray, int], None]


@dataclass
class ImageSegmenterOptions:
    """Options of the segmenter; the names and defaults follow MediaPipe's task options."""

    model_path: str
    running_mode: RunningMode = RunningMode.IMAGE
    output_confidence_masks: bool = True
    output_category_mask: bool = False
    display_names_locale: str = 'en'
    result_callback: Optional[ResultCallback] = None
    num_threads: int = 2


def _validate_options(options: ImageSegmenterOptions) -> None:
    if not isinstance(options.running_mode, RunningMode):
        raise ValueError('running_mode must be one of %s, got %r.' % (
            ', '.join(m.name for m in RunningMode), options.running_mode))
    if options.running_mode == RunningMode.LIVE_STREAM:
        if options.result_callback is None:
            raise ValueError('The vision task is in live stream mode, a user-defined result '
                             'callback must be provided.')
    elif options.result_callback:
        raise ValueError('The vision task is in image or video mode, a user-defined result '
                         'callback should not be provided.')
    if not (options.output_confidence_masks or options.output_category_mask):
        raise ValueError('At least one of `output_confidence_masks` and '
                         '`output_category_mask` must be set.')
    if not isinstance(options.num_threads, int) or not 1 <= options.num_threads <= 64:
        raise ValueError('num_threads must be an integer from 1 to 64, got %r.'
                         % (options.num_threads,))


def _validate_image(image: np.ndarray, channels_allowed: Tuple[int, ...] = (3, 4)) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError('image must be a numpy array, got %s.' % type(image).__name__)
    if image.dtype != np.uint8:
        raise ValueError('image must be uint8, got %s.' % image.dtype)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in channels_allowed):
        raise ValueError('image must be HxW gray, HxWx3 RGB or HxWx4 RGBA, got shape %s.'
                         % (image.shape,))
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError('image is empty (shape %s).' % (image.shape,))
    if max(image.shape[:2]) >= _MAX_SIDE:
        raise ValueError("image sides must be below %d pixels (the warp's limit), got %dx%d."
                         % (_MAX_SIDE, image.shape[1], image.shape[0]))


def _litert_release() -> str:
    """Return the LiteRT package in use and its version, for messages."""
    package = Interpreter.__module__.split('.')[0]
    try:
        return '%s %s' % (package, importlib.metadata.version(package.replace('_', '-')))
    except importlib.metadata.PackageNotFoundError:
        return package


class _Model:
    """A loaded model: interpreter, tensor layout and how to fill and read its tensors."""

    def __init__(self, path: Path, num_threads: int):
        try:
            model = path.read_bytes()
        except OSError as error:
            raise FileNotFoundError('Unable to open file at %s (%s).' % (path, error)) from None
        if not is_tflite_model(model):
            raise ValueError('The model is not a valid Flatbuffer buffer: %s is not a TFLite '
                             'file.' % path)
        try:
            self.metadata = read_segmenter_metadata(model)
        except Exception as error:
            raise ValueError('The model %s is truncated or corrupt: its metadata cannot be '
                             'read (%s).' % (path, error)) from None
        try:
            self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError('The model %s could not be loaded by LiteRT: %s'
                             % (path, str(error).strip())) from None
        except SystemError:  # how a LiteRT built against another numpy ABI fails
            raise RuntimeError(
                '%s cannot run with the installed numpy %s, which it was not built for: install '
                'a numpy it accepts, or ai-edge-litert (requirements-robot.txt).'
                % (_litert_release(), np.__version__)) from None
        self._check_layout(path)

    def _check_layout(self, path: Path) -> None:
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) not in (1, 2):
            raise ValueError('The model %s must have one input tensor and one or two output '
                             'tensors, it has %d and %d.' % (path, len(inputs), len(outputs)))
        self.input, self.output = inputs[0], outputs[-1]
        shape = tuple(self.input['shape'])
        if len(shape) != 4 or shape[0] != 1 or shape[3] not in (3, 4):
            raise ValueError('The model %s input must be [1, height, width, 3 or 4], it is %s.'
                             % (path, list(shape)))
        out_shape = tuple(self.output['shape'])
        if len(out_shape) != 4 or out_shape[0] != 1:
            raise ValueError('The model %s output must be [1, height, width, classes], it is %s.'
                             % (path, list(out_shape)))
        self.height, self.width, self.channels = (int(v) for v in shape[1:])
        self.num_classes = int(out_shape[3])
        output_scale = self.output['quantization'][0]
        if self.output['dtype'] != np.float32 and not (
                self.output['dtype'] in (np.uint8, np.int8) and output_scale > 0):
            raise ValueError('The model %s output must be float32, or uint8/int8 with a '
                             'quantization scale; it is %s (scale %g).' % (
                                 path, np.dtype(self.output['dtype']).name, output_scale))
        if self.input['dtype'] == np.float32:
            if self.metadata.normalization is None:
                raise FileNotFoundError(
                    'Input tensor has type kTfLiteFloat32: it requires specifying '
                    'NormalizationOptions metadata to preprocess input images (model %s).'
                    % path)
            mean, std = self.metadata.normalization
            if len(mean) not in (1, 3) or len(std) != len(mean):
                raise ValueError('The model %s needs 1 or 3 normalization values, it has %d.'
                                 % (path, len(mean)))
            if len(set(mean)) > 1 or len(set(std)) > 1:
                raise NotImplementedError('Per-channel normalization with different values '
                                          'is not supported (model %s).' % path)
            if abs(std[0]) < 1e-7:
                raise RuntimeError('The model %s has a normalization std of 0.' % path)
            self.scale, self.offset = preprocessing.value_range_transform(
                self.metadata.normalization)
        elif self.input['dtype'] == np.uint8:
            self.scale, self.offset = np.float32(1.0), np.float32(0.0)
        else:
            raise ValueError('The model %s input type must be float32 or uint8, it is %s.'
                             % (path, np.dtype(self.input['dtype']).name))
        labels = self.metadata.labels
        if labels and len(labels) != self.num_classes:
            raise ValueError('The model %s has %d labels for %d output classes.'
                             % (path, len(labels), self.num_classes))
        for locale, names in self.metadata.display_names.items():
            if len(names) != len(labels):
                raise ValueError('The model %s has %d display names in locale %r for %d '
                                 'labels.' % (path, len(names), locale, len(labels)))
        if self.metadata.activation == Activation.SOFTMAX and self.num_classes < 2:
            raise ValueError('The model %s asks for SOFTMAX on a single output channel.' % path)
        # MediaPipe zeroes the alpha ("previous mask") channel only for its hair model.
        self.zero_alpha = (self.channels == 4 and len(labels) == 2 and labels[1] == 'hair')
        preprocessing.compile_image_to_tensor(self.input['dtype'], self.channels)

    def run(self, image: np.ndarray, rotation: int) -> np.ndarray:
        """
        Preprocess, invoke and return the output tensor as float32 (h, w, classes).

        The result may view the interpreter's own buffer (no copy of a large output): the
        caller drops it before the next ``run``.
        """
        if self.channels == 4:  # prepared before the tensor view: no view outlives a failure
            if rotation:
                image = np.rot90(image, k=-(rotation // 90))
            pixels, order = preprocessing.four_channel_pixels(image, self.width, self.height,
                                                              self.zero_alpha)
        tensor = self.interpreter.tensor(self.input['index'])()[0]
        if self.channels == 4:
            preprocessing.fill_four_channel_tensor(pixels, order, tensor, self.scale,
                                                   self.offset)
        else:
            preprocessing.image_to_tensor(image, tensor, self.scale, self.offset, rotation)
        del tensor  # LiteRT refuses to invoke while views of its buffers are alive.
        self.interpreter.invoke()
        output = self.interpreter.tensor(self.output['index'])()[0]
        if output.dtype != np.float32:
            scale, zero_point = self.output['quantization']
            output = (output.astype(np.float32) - zero_point) * np.float32(scale)
        if rotation:
            output = np.rot90(output, k=rotation // 90)
        return output


class ImageSegmenter:
    """
    Segments images into category and confidence masks, like MediaPipe's ImageSegmenter.

    Use as a context manager or call ``close()``; in LIVE_STREAM mode a worker thread runs
    the model and hands results to ``result_callback``.
    """

    def __init__(self, options: ImageSegmenterOptions):
        _validate_options(options)
        self._options = options
        self._model = _Model(resolve_model(str(options.model_path)), options.num_threads)
        model_labels = self._model.metadata.labels
        self._single_channel = self._model.num_classes == 1
        if self._single_channel:
            self._labels = [_SINGLE_CHANNEL_BACKGROUND,
                            model_labels[0] if model_labels else 'foreground']
        else:
            self._labels = list(model_labels)
        localized = self._model.metadata.display_names.get(options.display_names_locale)
        if localized and self._single_channel:
            localized = [_SINGLE_CHANNEL_BACKGROUND] + localized
        self._display_names = list(localized) if localized else list(self._labels)
        self._last_timestamp_ms: Optional[int] = None
        self._workspace = postprocessing.Workspace()
        postprocessing.compile_category_mask()
        self._lock = threading.Lock()  # the model and workspace, one frame at a time
        self._timestamp_lock = threading.Lock()  # never held during inference
        self._category_helper: Optional[ThreadPoolExecutor] = None
        self._live: Optional[_LiveStreamWorker] = None
        if options.running_mode == RunningMode.LIVE_STREAM:
            self._live = _LiveStreamWorker(weakref.WeakMethod(self._segment),
                                           options.result_callback)

    @classmethod
    def create_from_options(cls, options: ImageSegmenterOptions) -> 'ImageSegmenter':
        """
        Create a segmenter.

        Raises ValueError, FileNotFoundError, RuntimeError or NotImplementedError, with
        MediaPipe's messages where it has one.
        """
        return cls(options)

    @classmethod
    def create_from_model_path(cls, model_path: str) -> 'ImageSegmenter':
        """Create an IMAGE-mode segmenter with default options."""
        return cls(ImageSegmenterOptions(model_path=model_path))

    @property
    def labels(self) -> List[str]:
        """Class names, index = category value (single-channel models: background first)."""
        return list(self._labels)

    @property
    def display_names(self) -> List[str]:
        """Class names in ``display_names_locale``, falling back to ``labels``."""
        return list(self._display_names)

    @property
    def options(self) -> ImageSegmenterOptions:
        """Return the options this segmenter was created with."""
        return self._options

    @property
    def input_size(self) -> Tuple[int, int]:
        """Return the model's input (height, width)."""
        return self._model.height, self._model.width

    def segment(self, image: np.ndarray, rotation_degrees: int = 0, *,
                output_confidence_masks: Optional[bool] = None,
                output_category_mask: Optional[bool] = None,
                confidence_classes: Optional[Sequence[int]] = None) -> ImageSegmenterResult:
        """
        Segment one image (IMAGE mode).

        The keyword-only overrides narrow the outputs of this call, e.g. when nobody consumes
        a mask; None keeps the option's value. ``confidence_classes`` limits the confidence
        masks computed to those class indices (the list keeps one entry per class, None for
        the others): with 21 classes, most of the cost is resizing masks nobody reads.
        """
        self._require_mode(RunningMode.IMAGE)
        return self._segment(image, rotation_degrees, output_confidence_masks,
                             output_category_mask, confidence_classes)

    def segment_for_video(self, image: np.ndarray, timestamp_ms: int,
                          rotation_degrees: int = 0, *,
                          output_confidence_masks: Optional[bool] = None,
                          output_category_mask: Optional[bool] = None,
                          confidence_classes: Optional[Sequence[int]] = None
                          ) -> ImageSegmenterResult:
        """Segment a video frame; timestamps must increase strictly (VIDEO mode)."""
        self._require_mode(RunningMode.VIDEO)
        self._advance_timestamp(timestamp_ms)
        return self._segment(image, rotation_degrees, output_confidence_masks,
                             output_category_mask, confidence_classes)

    def segment_async(self, image: np.ndarray, timestamp_ms: int,
                      rotation_degrees: int = 0) -> None:
        """
        Queue a live frame (LIVE_STREAM mode); the result reaches ``result_callback``.

        As in MediaPipe, one frame is processed while at most one waits; a newer frame
        replaces the waiting one, so some inputs produce no result. The frame is copied (as
        into MediaPipe's Image), so the caller may reuse its buffer at once.
        """
        self._require_mode(RunningMode.LIVE_STREAM)
        _validate_image(image)
        preprocessing.validate_rotation(rotation_degrees)
        self._advance_timestamp(timestamp_ms)
        self._live.submit(image.copy(), int(timestamp_ms), rotation_degrees)

    @property
    def dropped_frames(self) -> int:
        """Live frames replaced by newer ones before they were processed."""
        return self._live.dropped if self._live else 0

    def close(self) -> None:
        """Finish queued live frames and release the worker threads."""
        if self._live is not None:
            self._live.stop()
        with self._lock:
            if self._category_helper is not None:
                self._category_helper.shutdown()
                self._category_helper = None

    def __del__(self) -> None:
        # A LIVE_STREAM segmenter dropped without close() must not leave its worker behind
        # (the worker holds the callback, so a callback bound to the segmenter's owner keeps
        # that owner, and the segmenter, alive until close()).
        if getattr(self, '_live', None) is not None:
            self._live.stop()

    def __enter__(self) -> 'ImageSegmenter':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _require_mode(self, mode: RunningMode) -> None:
        current = self._options.running_mode
        if current != mode:
            raise ValueError('Task is not initialized with the %s. Current running mode:%s'
                             % (mode._description, current._description))

    def _advance_timestamp(self, timestamp_ms: int) -> None:
        with self._timestamp_lock:
            if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
                raise ValueError('Input timestamp must be monotonically increasing.')
            self._last_timestamp_ms = int(timestamp_ms)

    def _segment(self, image: np.ndarray, rotation_degrees: int,
                 want_confidence: Optional[bool] = None,
                 want_category: Optional[bool] = None,
                 classes: Optional[Sequence[int]] = None) -> ImageSegmenterResult:
        _validate_image(image)
        rotation = preprocessing.validate_rotation(rotation_degrees)
        count = 2 if self._single_channel else self._model.num_classes
        if classes is not None and not all(
                isinstance(index, (int, np.integer)) and 0 <= index < count for index in classes):
            raise ValueError('confidence_classes must be class indices from 0 to %d, not %r.'
                             % (count - 1, list(classes)))
        want_confidence = (self._options.output_confidence_masks if want_confidence is None
                           else want_confidence)
        want_category = (self._options.output_category_mask if want_category is None
                         else want_category)
        height, width = image.shape[:2]
        activation = self._model.metadata.activation
        result = ImageSegmenterResult()
        with self._lock:
            tensor = self._model.run(image, rotation)
            category: Optional[Future] = None
            try:
                if want_category and want_confidence and self._overlaps(classes):
                    category = self._category_helper.submit(
                        postprocessing.category_mask, tensor, activation, width, height,
                        self._workspace)
                elif want_category:
                    result.category_mask = postprocessing.category_mask(
                        tensor, activation, width, height, self._workspace)
                if want_confidence:
                    masks, finite = postprocessing.confidence_masks(
                        np.ascontiguousarray(tensor), activation, width, height,
                        self._workspace, None if self._single_channel else classes)
            finally:
                if category is not None:
                    result.category_mask = category.result()
                del tensor  # may view the interpreter's output buffer
        if want_confidence:
            if self._single_channel:
                masks.insert(0, np.float32(1.0) - masks[0])
                if classes is not None:
                    masks = [mask if index in classes else None
                             for index, mask in enumerate(masks)]
            result.confidence_masks = masks
            result.confidences_finite = finite
        return result

    def _overlaps(self, classes: Optional[Sequence[int]]) -> bool:
        """
        Tell whether to make the category mask on a second thread, beside the confidence masks.

        Only with several threads allowed, and only with three confidence masks or more: then
        they take longer than the category mask, so this thread seldom waits for the helper
        (deeplab_v3 at 640x480: about 1.5 ms less per frame, the same CPU at 30 Hz). With
        fewer masks, waiting for the helper to wake between a camera's frames costs more than
        it saves (hair_segmenter at 30 Hz: 3 ms later).
        """
        masks = self._model.num_classes if classes is None else len(classes)
        if self._options.num_threads < 2 or self._single_channel or masks < 3:
            return False
        if self._category_helper is None:
            self._category_helper = ThreadPoolExecutor(
                1, thread_name_prefix='image_segmenter_category')
        return True


class _LiveStreamWorker:
    """MediaPipe's live-stream flow limit: one frame in flight, one waiting, newest wins."""

    def __init__(self, segment: 'weakref.WeakMethod[Callable[..., ImageSegmenterResult]]',
                 callback: ResultCallback):
        self._segment = segment  # weak: the worker must not keep its segmenter alive
        self._callback = callback
        self._condition = threading.Condition()
        self._waiting: Optional[Tuple[np.ndarray, int, int]] = None
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name='image_segmenter_live',
                                        daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, timestamp_ms: int, rotation: int) -> None:
        with self._condition:
            if self._stopping:
                raise ValueError('The segmenter is closed.')
            if self._waiting is not None:
                self.dropped += 1
            self._waiting = (image, timestamp_ms, rotation)
            self._condition.notify()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._waiting is None and not self._stopping:
                    self._condition.wait()
                if self._waiting is None:
                    return
                image, timestamp_ms, rotation = self._waiting
                self._waiting = None
            segment = self._segment()
            if segment is None:  # the segmenter was dropped
                return
            try:
                self._callback(segment(image, rotation), image, timestamp_ms)
            except Exception:  # One bad frame must not end the stream.
                _LOGGER.exception('Live-stream segmentation failed at %d ms', timestamp_ms)
            finally:
                del segment  # while waiting, hold the segmenter only weakly

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
The ``image_segmenter`` node: camera images in, category and confidence masks out.

ROS glue only: parameters, QoS, topics, a worker thread and diagnostics. Decoding lives in
``image_conversions`` and segmentation in the engine, both free of rclpy.
"""

import collections
import copy
from dataclasses import dataclass, fields
import re
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (qos_profile_sensor_data, QoSDurabilityPolicy, QoSPolicyKind, QoSProfile,
                       QoSReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from .input_images import InvalidImageError, message_to_array
from .input_subscription import InputSubscription
from .output_messages import (category_message, confidence_message, confidence_topics, labels_yaml,
                              MessageBuffer, overlay_message)
from .parameters import (BY_NAME, check_outputs, ConfigurationError, create_segmenter,
                         model_name, PARAMETERS, qos_override_problem,
                         qos_override_value_problem, startup_problem)
from ..engine import ImageSegmenter, ImageSegmenterResult, keep_freed_memory, RunningMode

try:
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

WARN_PERIOD_SEC = 5.0
# The policies a parameters file may override per topic (see parameters.QOS_OVERRIDE_VALUES).
QOS_OVERRIDES = QoSOverridingOptions(policy_kinds=(
    QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
    QoSPolicyKind.DURABILITY))
FOLLOWED_INPUT_OVERRIDES = QoSOverridingOptions(policy_kinds=(
    QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.DURABILITY))
STATS_WINDOW = 300  # frames behind each percentile in /diagnostics
DIAGNOSTICS_WINDOW_SEC = 5  # the status speaks of this many last seconds (1 Hz updates)
STAMPS_FAR_SEC = 10.0  # a median latency beyond this is the age of the stamps, not the node's


@dataclass(frozen=True)
class _FrameSettings:
    """The run-time parameters, read once per frame so an update never lands mid-frame."""

    rotation_degrees: int
    overlay_alpha: float
    max_input_pixels: int


def stamp_to_ms(stamp: Any) -> int:
    """Milliseconds of a builtin_interfaces/Time, the engine's VIDEO timestamps."""
    return stamp.sec * 1000 + stamp.nanosec // 1_000_000


class _FrameQueue:
    """
    Messages waiting for the worker, so subscription callbacks never block.

    With capacity 1 it is the live-stream slot (the newest frame wins); otherwise a bounded
    FIFO. Either way a put into a full queue drops the oldest message and says so.
    """

    def __init__(self, capacity: int):
        self._items: Deque[Any] = collections.deque(maxlen=capacity)
        self._condition = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> bool:
        with self._condition:
            dropped = len(self._items) == self._items.maxlen
            self._items.append(item)
            self._condition.notify()
        return dropped

    def get(self) -> Optional[Any]:
        """Wait for the oldest item; None once closed."""
        with self._condition:
            while not self._items and not self._closed:
                self._condition.wait()
            return None if self._closed else self._items.popleft()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class _Stats:
    """Counters and recent timings for /diagnostics, shared by the worker and the timer."""

    # Counter: its key in /diagnostics.
    COUNTERS = {'received': 'frames received', 'processed': 'frames processed',
                'dropped': 'frames dropped', 'rejected': 'frames rejected',
                'failed': 'frames failed (errors)',
                'skipped': 'frames skipped (no subscribers)',
                'time_jumps': 'time jumps (segmenter restarted)'}

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.last_reason = {'rejected': 'none', 'failed': 'none'}
        self.processing_ms: Deque[float] = collections.deque(maxlen=STATS_WINDOW)
        self.latency_ms: Deque[float] = collections.deque(maxlen=STATS_WINDOW)

    def count(self, counter: str, reason: Optional[str] = None) -> None:
        with self._lock:
            self.counts[counter] += 1
            if reason is not None:
                self.last_reason[counter] = reason

    def frame_done(self, processing_ms: float, latency_ms: Optional[float]) -> None:
        with self._lock:
            self.counts['processed'] += 1
            self.processing_ms.append(processing_ms)
            if latency_ms is not None:
                self.latency_ms.append(latency_ms)

    def snapshot(self) -> Tuple[Dict[str, int], List[float], List[float]]:
        with self._lock:
            return dict(self.counts), list(self.processing_ms), list(self.latency_ms)


def diagnostic_status(counts: Dict[str, int], earlier: Dict[str, int], seconds: int,
                      drops_matter: bool, topic: str, publishers: int = 0,
                      latency_p50_ms: Optional[float] = None) -> Tuple[bytes, str]:
    """
    Level and message of /diagnostics from the counters now and ``seconds`` ago.

    WARN while frames fail, are rejected or (outside LIVE_STREAM, which drops by design) are
    dropped; when no frame has come for the whole window (naming the ``publishers`` seen: none
    hints at a wrong remapping); and when the frames' stamps are so far from the node's clock
    that the latency measures their age (a replayed bag without sim time).
    """
    recent = {name: counts[name] - earlier[name] for name in counts}
    for counter in ('failed', 'rejected') + (('dropped',) if drops_matter else ()):
        if recent[counter]:
            return DiagnosticStatus.WARN, '%s frames in the last %d s: %d' % (
                counter.capitalize(), seconds, recent[counter])
    waited = seconds >= DIAGNOSTICS_WINDOW_SEC
    if not recent['received'] and waited:
        return DiagnosticStatus.WARN, '%s on %s for %d s; publishers seen: %d%s' % (
            'No frames' if counts['received'] else 'No frames received', topic, seconds,
            publishers, ' (is the image topic remapped to the camera?)' if not publishers
            else '')
    if not counts['received']:
        return DiagnosticStatus.OK, 'No frames received yet on %s' % topic
    if latency_p50_ms is not None and abs(latency_p50_ms) > STAMPS_FAR_SEC * 1000:
        return DiagnosticStatus.WARN, (
            "Stamps on %s are %.0f s %s this node's clock, so the latency figures are their "
            "age: a replayed bag? Run with use_sim_time:=true and the bag's /clock "
            '(replay_bag --clock, ros2 bag play --clock).' % (
                topic, abs(latency_p50_ms) / 1000,
                'behind' if latency_p50_ms > 0 else 'ahead of'))
    return DiagnosticStatus.OK, 'Segmenting'


def _percentiles(name: str, samples: List[float]) -> List[KeyValue]:
    if not samples:
        return [KeyValue(key='%s %s (ms)' % (name, q), value='n/a') for q in ('p50', 'p90', 'max')]
    p50, p90, top = np.percentile(samples, [50, 90, 100])
    return [KeyValue(key='%s p50 (ms)' % name, value='%.1f' % p50),
            KeyValue(key='%s p90 (ms)' % name, value='%.1f' % p90),
            KeyValue(key='%s max (ms)' % name, value='%.1f' % top)]


class ImageSegmenterNode(Node):
    """Segments every (or the newest) camera frame and publishes masks with its header."""

    def __init__(self, **kwargs: Any):
        super().__init__('image_segmenter', **kwargs)
        try:
            self._start()
        except BaseException:
            # A node that cannot start gives its DDS entities back now, while rclpy still
            # runs, not to the garbage collector after shutdown.
            Node.destroy_node(self)
            raise

    def _start(self) -> None:
        # The command line's and the parameters file's values (rclpy has no public accessor).
        overrides = self._parameter_overrides
        for name, override in overrides.items():
            problem = qos_override_value_problem(name, override.value)
            if problem:
                raise ConfigurationError(problem)
        self.add_on_set_parameters_callback(self._check_parameters)
        # Iron and later: ``ros2 param set overlay_alpha 1`` is taken as 1.0, like at start-up.
        pre_set = getattr(self, 'add_pre_set_parameters_callback', None)
        if pre_set is not None:
            pre_set(self._coerce_parameters)
        for param in PARAMETERS:
            value = overrides[param.name].value if param.name in overrides else param.default
            try:
                self.declare_parameter(param.name, param.coerce(value), param.descriptor(),
                                       ignore_override=True)
            except (InvalidParameterValueException, InvalidParameterTypeException) as error:
                raise ConfigurationError(startup_problem(param, str(error))) from None
        check_outputs(self._value)
        self._mode = RunningMode[self._value('running_mode')]
        self._settings = self._read_settings()
        # Iron and later: a new snapshot after each update, even of several parameters at
        # once, so no frame sees half of one. Humble lacks the hook: each frame reads afresh.
        post_set = getattr(self, 'add_post_set_parameters_callback', None)
        self._settings_per_frame = post_set is None
        if post_set is not None:
            post_set(self._refresh_settings)
        self._model = model_name(self._value)
        self._segmenter = self._create_segmenter()
        self._last_stamp_ms: Optional[int] = None
        self._stopping = False
        self._stats = _Stats()
        # Counters of the last DIAGNOSTICS_WINDOW_SEC seconds: the status reflects what happens
        # now, not one bad frame at boot.
        self._recent_counts: Deque[Dict[str, int]] = collections.deque(
            [dict.fromkeys(_Stats.COUNTERS, 0)], maxlen=DIAGNOSTICS_WINDOW_SEC + 1)
        self._warned: Dict[str, float] = {}  # kind of rejection -> when it was last warned of
        self._queue = _FrameQueue(
            1 if self._mode == RunningMode.LIVE_STREAM else self._value('queue_size'))
        self._create_topics()
        self._diagnostics_timer = self.create_timer(
            1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._worker = threading.Thread(target=self._work, name='image_segmenter_worker',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            'Segmenting %s with %s in %s mode; classes: %s.'
            % (self._input_topic, self._model, self._mode.name,
               ', '.join(self._segmenter.labels)))

    # Parameters and model

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _coerce_parameters(self, parameters: List[Parameter]) -> List[Parameter]:
        return [Parameter(parameter.name, value=BY_NAME[parameter.name].coerce(parameter.value))
                if parameter.name in BY_NAME else parameter for parameter in parameters]

    def _check_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            spec = BY_NAME.get(parameter.name)
            reason = spec.check(parameter.value) if spec else None
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _read_settings(self) -> _FrameSettings:
        return _FrameSettings(**{field.name: self._value(field.name)
                                 for field in fields(_FrameSettings)})

    def _refresh_settings(self, parameters: List[Parameter]) -> None:
        self._settings = self._read_settings()

    def _create_segmenter(self) -> ImageSegmenter:
        # The node keeps its own live-stream slot, so LIVE_STREAM frames are single images.
        return create_segmenter(self._value, RunningMode.VIDEO
                                if self._mode == RunningMode.VIDEO else RunningMode.IMAGE)

    # Topics

    def _create_topics(self) -> None:
        def publisher(msg_type: type, topic: str) -> Any:
            # A profile of its own: rclpy writes the topic's QoS overrides into it.
            return self._create_overridable(
                self.create_publisher, 'publisher', msg_type, topic,
                QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE),
                PublisherEventCallbacks)

        self._category_pub = (publisher(Image, 'category_mask')
                              if self._value('output_category_mask') else None)
        self._confidence_topics = (confidence_topics(self._segmenter.labels)
                                   if self._value('output_confidence_masks') else [])
        self._confidence_pubs = [publisher(Image, topic) for topic in self._confidence_topics]
        self._overlay_pub = publisher(Image, 'overlay')
        # One reused message per output: the worker publishes them one at a time.
        self._category_buffer = MessageBuffer()
        self._confidence_buffers = [MessageBuffer() for _ in self._confidence_pubs]
        self._overlay_buffer = MessageBuffer()
        self._labels_pub = self.create_publisher(String, 'labels', QoSProfile(
            depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        self._labels_pub.publish(String(data=labels_yaml(
            self._model, self._value('display_names_locale'), self._segmenter.labels,
            self._segmenter.display_names, self._value('output_confidence_masks'))))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

        compressed = self._value('input_transport') == 'compressed'
        # Like image_transport: the compressed stream lives under the (remapped) image topic.
        self._input_topic = self.resolve_topic_name('image') + ('/compressed' if compressed
                                                                else '')
        input_qos = copy.copy(qos_profile_sensor_data)
        if self._mode == RunningMode.VIDEO:  # every frame: DDS may hold as many as the queue
            input_qos.depth = max(input_qos.depth, self._value('queue_size'))
        # Every frame counts outside LIVE_STREAM: reliable from reliable publishers, unless the
        # parameters say otherwise.
        overridden = 'qos_overrides.%s.subscription.reliability' % self._input_topic in \
            self._parameter_overrides
        follow = self._mode != RunningMode.LIVE_STREAM and not overridden
        self._input = InputSubscription(
            self, self._input_topic, input_qos, lambda qos: self._create_overridable(
                self.create_subscription, 'subscription',
                CompressedImage if compressed else Image, self._input_topic, qos,
                SubscriptionEventCallbacks, callback=self._on_image,
                # The first subscription's reliability, declared as an override parameter,
                # would be forced on every later one.
                overrides=FOLLOWED_INPUT_OVERRIDES if follow else QOS_OVERRIDES),
            follow=follow)

    def _create_overridable(self, create: Callable[..., Any], side: str, msg_type: type,
                            topic: str, qos: QoSProfile, event_callbacks: type,
                            overrides: QoSOverridingOptions = QOS_OVERRIDES,
                            **kwargs: Any) -> Any:
        """Create a publisher or subscription whose QoS the ``qos_overrides`` can change."""
        default = copy.copy(qos)  # rclpy writes the overrides into ``qos``
        try:
            return create(msg_type, topic, qos_profile=qos, qos_overriding_options=overrides,
                          event_callbacks=event_callbacks(
                              incompatible_qos=lambda info: self._incompatible_qos(
                                  info, topic, side, qos)), **kwargs)
        except (RuntimeError, InvalidParameterTypeException,
                InvalidParameterValueException) as error:
            problem = qos_override_problem(self.resolve_topic_name(topic), side, str(error),
                                           overridden=qos != default)
            if problem is None or not self.context.ok():  # not an override's fault
                raise
            raise ConfigurationError(problem) from None

    def _incompatible_qos(self, info: Any, topic: str, side: str, ours: QoSProfile) -> None:
        """Say which QoS override fixes a peer that DDS silently refuses to connect."""
        policy = QoSPolicyKind(info.last_policy_kind)
        topic = self.resolve_topic_name(topic)
        peer = 'publisher' if side == 'subscription' else 'subscriber'
        # What our side should switch to, for the two policies peers usually disagree on.
        fixes = {QoSPolicyKind.RELIABILITY: (ours.reliability, 'best_effort', 'reliable'),
                 QoSPolicyKind.DURABILITY: (ours.durability, 'volatile', 'transient_local')}
        if policy in fixes:
            current, for_subscription, for_publisher = fixes[policy]
            self.get_logger().warning(
                'A %s on %s has an incompatible %s QoS policy (ours: %s), so no messages flow '
                "between us: set parameter 'qos_overrides.%s.%s.%s' to %s in the parameters "
                'file, or change the %s.' % (
                    peer, topic, policy.name, current.name.lower(), topic, side,
                    policy.name.lower(),
                    for_subscription if side == 'subscription' else for_publisher, peer))
        else:
            self.get_logger().warning(
                'A %s on %s has an incompatible %s QoS policy, so no messages flow between us: '
                'change its %s policy.' % (peer, topic, policy.name, policy.name.lower()))

    # Frames

    def _on_image(self, msg: Any) -> None:
        self._stats.count('received')
        if self._queue.put(msg):
            self._stats.count('dropped')
            if self._mode != RunningMode.LIVE_STREAM:
                self.get_logger().warning(
                    'Input queue full (queue_size %d): dropped the oldest frame; processing is '
                    'slower than %s.' % (self._value('queue_size'), self._input_topic),
                    throttle_duration_sec=WARN_PERIOD_SEC)

    def _work(self) -> None:
        while True:
            msg = self._queue.get()
            if msg is None:
                return
            settings = self._read_settings() if self._settings_per_frame else self._settings
            try:
                self._process(msg, settings)
            except Exception as error:  # The worker must outlive any single frame.
                if self._stopping or not self.context.ok():  # publishers gone, not broken
                    return
                reason = '%s: %s' % (type(error).__name__, str(error).strip())
                self._stats.count('failed', reason)
                self.get_logger().error(
                    'Failed to process a frame from %s (%s); it was not published, the next '
                    'frame is processed as usual.' % (self._input_topic, reason),
                    throttle_duration_sec=WARN_PERIOD_SEC)

    def _wanted(self) -> Tuple[bool, List[int], bool]:
        """Which outputs have subscribers: category mask, confidence indices, overlay."""
        category = bool(self._category_pub and self._category_pub.get_subscription_count())
        confidences = [index for index, pub in enumerate(self._confidence_pubs)
                       if pub.get_subscription_count()]
        return category, confidences, self._overlay_pub.get_subscription_count() > 0

    def _process(self, msg: Any, settings: _FrameSettings) -> None:
        category, confidences, overlay = self._wanted()
        if not (category or confidences or overlay):
            self._stats.count('skipped')
            return
        start = time.perf_counter()
        try:
            image = message_to_array(msg, settings.max_input_pixels)
            result = self._segment(image, msg.header.stamp, confidences,
                                   category or overlay, settings.rotation_degrees)
        except (InvalidImageError, ValueError) as error:
            self._reject(str(error))
            return
        if result is None:
            return
        if not all(np.isfinite(result.confidence_masks[index]).all() for index in confidences):
            raise FloatingPointError('the model produced NaN or infinite confidences')
        header = msg.header
        if category:
            self._category_pub.publish(category_message(header, result, self._category_buffer))
        for index in confidences:
            self._confidence_pubs[index].publish(confidence_message(
                header, result, index, self._confidence_buffers[index]))
        if overlay:
            self._overlay_pub.publish(overlay_message(
                header, image, result, settings.overlay_alpha, getattr(msg, 'encoding', None),
                self._overlay_buffer))
        latency = None
        if header.stamp.sec or header.stamp.nanosec:
            latency = (self.get_clock().now() - Time.from_msg(header.stamp)).nanoseconds / 1e6
        self._stats.frame_done((time.perf_counter() - start) * 1000.0, latency)

    def _reject(self, reason: str) -> None:
        """Count a bad frame; warn at most every WARN_PERIOD_SEC per kind of problem."""
        self._stats.count('rejected', reason)
        # The kind is the reason without its numbers and quoted values; the table is capped so
        # that a publisher of endless odd encodings cannot grow it.
        kind = re.sub(r"\d+|'[^']*'|\"[^\"]*\"", '', reason)
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_PERIOD_SEC) < WARN_PERIOD_SEC:
            return
        if len(self._warned) > 64:
            self._warned.clear()
        self._warned[kind] = now
        self.get_logger().warning('Rejected a frame from %s: %s' % (self._input_topic, reason))

    def _segment(self, image: np.ndarray, stamp: Any, confidences: List[int],
                 category: bool, rotation: int) -> Optional[ImageSegmenterResult]:
        """
        Run the engine for the requested masks; None when a VIDEO frame must be skipped.

        Only the confidence masks of ``confidences`` (the classes with subscribers) are made.
        """
        wanted = {'output_confidence_masks': bool(confidences),
                  'output_category_mask': category, 'confidence_classes': confidences}
        if self._mode != RunningMode.VIDEO:
            return self._segmenter.segment(image, rotation, **wanted)
        timestamp = stamp_to_ms(stamp)
        if self._last_stamp_ms is not None and timestamp <= self._last_stamp_ms:
            if timestamp == self._last_stamp_ms:
                self._reject('its stamp (%d ms) is in the same millisecond as the previous '
                             "frame's; VIDEO mode needs increasing stamps" % timestamp)
                return None
            self._stats.count('time_jumps')
            self.get_logger().warning(
                'Time went backwards on %s (%d ms -> %d ms, a looping bag or a simulator '
                'reset?): restarting the segmenter.' % (self._input_topic,
                                                        self._last_stamp_ms, timestamp))
            self._segmenter.close()
            self._segmenter = self._create_segmenter()
        self._last_stamp_ms = timestamp
        return self._segmenter.segment_for_video(image, timestamp, rotation, **wanted)

    # Diagnostics

    def _publish_diagnostics(self) -> None:
        counts, processing, latency = self._stats.snapshot()
        self._recent_counts.append(counts)
        level, message = diagnostic_status(
            counts, self._recent_counts[0], len(self._recent_counts) - 1,
            self._mode != RunningMode.LIVE_STREAM, self._input_topic,
            self._input.publisher_count(), np.median(latency) if latency else None)
        values = [KeyValue(key=_Stats.COUNTERS[name], value=str(value))
                  for name, value in counts.items()]
        values += _percentiles('processing time', processing)
        values += _percentiles('latency', latency)
        values.append(KeyValue(key='latency measures', value=(
            "from each frame's header.stamp to its masks' publication, on the node's %s clock"
            % ('simulated (/clock)' if self.get_parameter('use_sim_time').value
               else 'system'))))
        values += [KeyValue(key='last %s frame' % counter, value=reason)
                   for counter, reason in self._stats.last_reason.items()]
        category, confidences, overlay = self._wanted()
        subscribed = ((['category_mask'] if category else []) +
                      [self._confidence_topics[index] for index in confidences] +
                      (['overlay'] if overlay else []))
        values += [KeyValue(key='outputs with subscribers', value=', '.join(subscribed) or 'none'),
                   KeyValue(key='model', value=self._model),
                   KeyValue(key='running mode', value=self._mode.name),
                   KeyValue(key='input topic', value=self._input_topic),
                   KeyValue(key='input reliability', value=self._input.reliability)]
        status = DiagnosticStatus(level=level, name='%s: segmentation' % (
            self.get_fully_qualified_name()), message=message, hardware_id=self._model,
            values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        self._stopping = True
        self._queue.close()
        # A frame in flight finishes in milliseconds; never let a stuck one hold up shutdown.
        self._worker.join(timeout=1.0)
        if self._worker.is_alive():
            self.get_logger().warning('The worker thread did not stop within 1 s of shutdown.')
        self._segmenter.close()
        super().destroy_node()


def run(stop: Any, args: Optional[List[str]] = None) -> int:
    """
    Run the node until a signal; return the exit code: 0, or 1 with one sentence on a bad setup.

    ``stop`` is the installed handler (``main.StopSignals``); setting its ``stopping`` before
    the cleanup makes every later signal harmless, so nothing interrupts it.
    """
    code = 0
    executor = node = None
    try:
        # Masks, messages and DDS buffers of every frame then reuse freed memory: at 720p this
        # halves the node's processing time (page faults of fresh mmaps otherwise).
        keep_freed_memory()
        rclpy.init(args=args)
        # Created before the slow start-up (model, topics): a signal that shuts the context
        # down while an executor is being built leaves a half-built one rclpy reports on exit.
        executor = SingleThreadedExecutor()
        node = ImageSegmenterNode()
        rclpy.spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigurationError as error:
        stop.stopping = True
        rclpy.logging.get_logger('image_segmenter').fatal(str(error))
        code = 1
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT or SIGTERM arrived while the node was still starting: a clean stop.
    finally:
        stop.stopping = True
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code

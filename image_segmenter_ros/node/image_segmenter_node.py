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

ROS glue only: parameters, QoS, topics, a worker thread and diagnostics, in a core that the
plain node here and the lifecycle node (``lifecycle_node``) share. Decoding lives in
``input_images`` and segmentation in the engine, both free of rclpy.
"""

import collections
import copy
import ctypes
from dataclasses import dataclass, fields
import os
import re
import sys
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

from .image_cdr import image_from_cdr
from .input_images import InvalidImageError, message_to_array
from .input_subscription import InputSubscription
from .output_messages import (category_message, CATEGORY_TOPIC, confidence_message,
                              confidence_topics, LABELS_TOPIC, labels_yaml, overlay_message,
                              OVERLAY_TOPIC)
from .parameters import (BY_NAME, check_outputs, ConfigurationError, create_segmenter,
                         model_name, NODE_NAME, PARAMETERS, qos_override_problem,
                         qos_override_value_problem, run_time_model_problem, startup_problem)
from ..engine import (ImageSegmenter, ImageSegmenterResult, keep_freed_memory,
                      opencv_on_calling_thread, RunningMode)

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

    def resize(self, capacity: int) -> None:
        """Hold up to ``capacity`` items from now on, the newest if there are more."""
        with self._condition:
            self._items = collections.deque(self._items, maxlen=capacity)

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


# Reconfigured by a new segmenter and topics, built beside the running ones; the other
# parameters are read by each frame.
RECONFIGURABLE = ('model', 'model_selection', 'running_mode', 'output_category_mask',
                  'output_confidence_masks', 'display_names_locale', 'num_threads',
                  'input_transport', 'queue_size')


@dataclass(frozen=True)
class _Config:
    """The values of RECONFIGURABLE parameters that a segmenter and its topics are built from."""

    model: str
    running_mode: RunningMode
    output_category_mask: bool
    output_confidence_masks: bool
    display_names_locale: str
    num_threads: int
    input_transport: str
    queue_size: int

    @classmethod
    def read(cls, value: Callable[[str], Any]) -> '_Config':
        """Read (``value`` returns a parameter's value) and check a configuration."""
        check_outputs(value)
        return cls(model_name(value), RunningMode[value('running_mode')],
                   *(value(name) for name in RECONFIGURABLE[3:]))

    def changes(self, other: '_Config') -> str:
        """Say what ``other`` changes, as parameters are written: 'model a -> b, ...'."""
        def shown(value: Any) -> str:
            return value.name if isinstance(value, RunningMode) else (
                str(value).lower() if isinstance(value, bool) else str(value))
        return ', '.join('%s %s -> %s' % (field.name, shown(getattr(self, field.name)),
                                          shown(getattr(other, field.name)))
                         for field in fields(self)
                         if getattr(self, field.name) != getattr(other, field.name))

    def subscription(self) -> Tuple[str, bool, int]:
        """Return what the input subscription depends on: transport, live stream, depth."""
        return (self.input_transport, self.running_mode == RunningMode.LIVE_STREAM,
                self.queue_size if self.running_mode == RunningMode.VIDEO else 0)


class _Pipeline:
    """A segmenter and the publishers of its classes: what one frame is processed with."""

    def __init__(self, config: _Config, segmenter: ImageSegmenter, category_pub: Optional[Any],
                 confidence_pubs: Dict[str, Any]):
        self.config, self.segmenter, self.category_pub = config, segmenter, category_pub
        self.confidence_topics = list(confidence_pubs)
        self.confidence_pubs = list(confidence_pubs.values())
        self.last_stamp_ms: Optional[int] = None  # VIDEO mode: stamps must increase


class SegmenterCore:
    """
    The segmenter node's work, shared by the plain and the lifecycle node.

    A mixin over rclpy's Node or LifecycleNode. Parameters are declared at construction;
    ``_configure`` checks them and loads the model, ``_activate`` publishes the labels and
    subscribes, ``_deactivate`` unsubscribes, ``_cleanup`` frees the model and the topics. The
    plain node does the first two at once; the lifecycle node on its transitions. A change of
    a RECONFIGURABLE parameter builds a new segmenter and topics beside the running ones and
    switches between two frames; a value that cannot be used is refused with the start-up
    sentence and the running configuration goes on.
    """

    def _declare(self) -> None:
        self._declared = False  # until then, _declare checks each value itself
        self._pipeline: Optional[_Pipeline] = None
        self._frame_lock = threading.Lock()  # held by the worker for each frame
        self._input: Optional[InputSubscription] = None
        self._input_topic = self.resolve_topic_name('image')
        self._queue: Optional[_FrameQueue] = None
        self._worker: Optional[threading.Thread] = None
        self._overlay_pub = self._labels_pub = None
        self._stopping = False
        self._state = 'unconfigured'
        self._last_problem = ''
        self._last_change = 'none'
        self._stats = _Stats()
        self._recent_counts = self._counts_window()
        self._warned: Dict[str, float] = {}  # kind of rejection -> when it was last warned of
        # The command line's and the parameters file's values (rclpy has no public accessor).
        overrides = self._parameter_overrides
        for name, override in overrides.items():
            problem = qos_override_value_problem(name, override.value)
            if problem:
                raise ConfigurationError(problem)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # Iron and later: ``ros2 param set overlay_alpha 1`` is taken as 1.0, like at start-up.
        pre_set = getattr(self, 'add_pre_set_parameters_callback', None)
        if pre_set is not None:
            pre_set(self._coerce_parameters)
        for param in PARAMETERS:
            if param.name in overrides:  # overlay_alpha: 1 is 1.0; the default fixes the type
                overrides[param.name] = Parameter(
                    param.name, value=param.coerce(overrides[param.name].value))
            try:
                self.declare_parameter(param.name, param.default, param.descriptor())
            except (InvalidParameterValueException, InvalidParameterTypeException) as error:
                raise ConfigurationError(startup_problem(param, str(error))) from None
        self._declared = True
        self._settings = self._read_settings()
        # Iron and later: a new snapshot after each update, even of several parameters at
        # once, so no frame sees half of one. Humble lacks the hook: each frame reads afresh.
        post_set = getattr(self, 'add_post_set_parameters_callback', None)
        self._settings_per_frame = post_set is None
        if post_set is not None:
            post_set(self._refresh_settings)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diagnostics_timer = self.create_timer(
            1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _counts_window(self) -> Deque[Dict[str, int]]:
        """
        Counters of the last DIAGNOSTICS_WINDOW_SEC seconds, from now on.

        The status reflects what happens now, not one bad frame at boot.
        """
        start = self._stats.snapshot()[0]
        return collections.deque([start], maxlen=DIAGNOSTICS_WINDOW_SEC + 1)

    # Life cycle: the plain node configures and activates at once.

    def _configure(self) -> None:
        """Check the parameters, load the model, create the output topics."""
        config = _Config.read(self._value)
        self._overlay_pub = self._output_publisher(Image, OVERLAY_TOPIC)
        self._labels_pub = self._publisher(String, LABELS_TOPIC, QoSProfile(
            depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        self._pipeline = self._build(config, None)
        self._state = 'inactive'
        self.get_logger().info('Loaded %s for %s mode; classes: %s.' % (
            config.model, config.running_mode.name,
            ', '.join(self._pipeline.segmenter.labels)))

    def _activate(self) -> None:
        """Publish the labels, subscribe, segment."""
        config = self._pipeline.config
        self._publish_labels()
        self._queue = _FrameQueue(self._capacity(config))
        self._stopping = False
        self._recent_counts = self._counts_window()
        self._worker = threading.Thread(target=self._work, name='image_segmenter_worker',
                                        daemon=True)
        self._worker.start()
        self._subscribe(config)
        self._state = 'active'
        self.get_logger().info('Segmenting %s with %s in %s mode.' % (
            self._input_topic, config.model, config.running_mode.name))

    def _deactivate(self) -> None:
        """Unsubscribe and stop the worker; the model stays loaded."""
        if self._input is not None:
            self._input.destroy()
            self._input = None
        self._stop_worker()
        self._state = 'inactive'

    def _cleanup(self) -> None:
        """Free the model and every output topic."""
        pipeline = self._pipeline
        self._deactivate()
        self._release()
        for pub in ([pipeline.category_pub] + pipeline.confidence_pubs if pipeline else []) + [
                self._overlay_pub, self._labels_pub]:
            if pub is not None:
                self._destroy_publisher(pub)
        self._overlay_pub = self._labels_pub = None
        self._state = 'unconfigured'

    def _release(self) -> None:
        """
        Stop the worker and free the model; the DDS entities go with the node.

        At shutdown, after a signal has shut the context down: destroying the subscription and
        publishers one by one there, before the node, ended the process with SIGSEGV at times.
        """
        self._stop_worker()
        if self._frame_lock.acquire(timeout=1.0):
            pipeline, self._pipeline = self._pipeline, None
            self._frame_lock.release()
            if pipeline is not None:
                pipeline.segmenter.close()

    def _stop_worker(self) -> None:
        self._stopping = True
        if self._queue is not None:
            self._queue.close()
        if self._worker is not None:
            # A frame in flight finishes in milliseconds; never let a stuck one hold us up.
            self._worker.join(timeout=1.0)
            if self._worker.is_alive():
                self.get_logger().warning('The worker thread did not stop within 1 s.')
        self._worker = None

    # Publishers: the lifecycle node makes them lifecycle publishers.

    def _publisher(self, msg_type: type, topic: str, qos_profile: QoSProfile,
                   **kwargs: Any) -> Any:
        return self.create_publisher(msg_type, topic, qos_profile, **kwargs)

    def _destroy_publisher(self, publisher: Any) -> None:
        self.destroy_publisher(publisher)

    def _output_publisher(self, msg_type: type, topic: str) -> Any:
        # A profile of its own: rclpy writes the topic's QoS overrides into it.
        return self._create_overridable(
            self._publisher, 'publisher', msg_type, topic,
            QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE),
            PublisherEventCallbacks)

    # Parameters and model

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _coerce_parameters(self, parameters: List[Parameter]) -> List[Parameter]:
        return [Parameter(parameter.name, value=BY_NAME[parameter.name].coerce(parameter.value))
                if parameter.name in BY_NAME else parameter for parameter in parameters]

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        """Check each value; for a new configuration, build and switch to it (in order)."""
        for parameter in parameters:
            spec = BY_NAME.get(parameter.name)
            reason = spec.check(parameter.value) if spec else None
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        proposed = {parameter.name: parameter.value for parameter in parameters
                    if parameter.name in RECONFIGURABLE}
        if not (proposed and self._declared):  # at start-up, _configure reads them
            return SetParametersResult(successful=True)
        try:
            config = _Config.read(lambda name: proposed.get(name, self._value(name)))
            if 'model' in proposed or 'model_selection' in proposed:
                problem = run_time_model_problem(config.model, self._value('model_directories'))
                if problem:
                    raise ConfigurationError(problem)
            if self._pipeline is not None and config != self._pipeline.config:
                self._reconfigure(config)
        except ConfigurationError as error:
            self.get_logger().warning('Refused a parameter change: %s' % error)
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _read_settings(self) -> _FrameSettings:
        return _FrameSettings(**{field.name: self._value(field.name)
                                 for field in fields(_FrameSettings)})

    def _refresh_settings(self, parameters: List[Parameter]) -> None:
        self._settings = self._read_settings()

    def _create_segmenter(self, config: _Config) -> ImageSegmenter:
        values = dict(vars(config), running_mode=config.running_mode.name)
        # The node keeps its own live-stream slot, so LIVE_STREAM frames are single images.
        return create_segmenter(values.get, RunningMode.VIDEO
                                if config.running_mode == RunningMode.VIDEO else RunningMode.IMAGE)

    def _build(self, config: _Config, old: Optional[_Pipeline]) -> _Pipeline:
        """Load the model and create the topics ``config`` needs, reusing those of ``old``."""
        segmenter = self._create_segmenter(config)
        category = old.category_pub if old is not None else None
        if config.output_category_mask and category is None:
            category = self._output_publisher(Image, CATEGORY_TOPIC)
        kept = dict(zip(old.confidence_topics, old.confidence_pubs)) if old else {}
        topics = (confidence_topics(segmenter.labels) if config.output_confidence_masks
                  else [])
        return _Pipeline(config, segmenter, category if config.output_category_mask else None,
                         {topic: kept.get(topic) or self._output_publisher(Image, topic)
                          for topic in topics})

    def _reconfigure(self, config: _Config) -> None:
        """Build the new configuration beside the running one, then switch between frames."""
        old = self._pipeline
        start = time.perf_counter()
        new = self._build(config, old)
        load_ms = (time.perf_counter() - start) * 1000.0
        with self._frame_lock:
            self._pipeline = new
        old.segmenter.close()
        for pub in [old.category_pub] + old.confidence_pubs:
            if pub is not None and pub is not new.category_pub and \
                    pub not in new.confidence_pubs:
                self._destroy_publisher(pub)
        if self._state == 'active':
            self._publish_labels()
            if config.subscription() != old.config.subscription():
                self._input.destroy()
                self._queue.resize(self._capacity(config))
                self._subscribe(config)
        self._last_change = '%s (loaded in %.0f ms)' % (old.config.changes(config), load_ms)
        self.get_logger().info('Reconfigured: %s; classes: %s.' % (
            self._last_change, ', '.join(new.segmenter.labels)))

    # Topics

    def _publish_labels(self) -> None:
        pipeline = self._pipeline
        self._labels_pub.publish(String(data=labels_yaml(
            pipeline.config.model, pipeline.config.display_names_locale,
            pipeline.segmenter.labels, pipeline.segmenter.display_names,
            pipeline.config.output_confidence_masks)))

    @staticmethod
    def _capacity(config: _Config) -> int:
        return 1 if config.running_mode == RunningMode.LIVE_STREAM else config.queue_size

    def _subscribe(self, config: _Config) -> None:
        compressed = config.input_transport == 'compressed'
        # Like image_transport: the compressed stream lives under the (remapped) image topic.
        self._input_topic = self.resolve_topic_name('image') + ('/compressed' if compressed
                                                                else '')
        input_qos = copy.copy(qos_profile_sensor_data)
        if config.running_mode == RunningMode.VIDEO:  # DDS may hold as many as the queue
            input_qos.depth = max(input_qos.depth, config.queue_size)
        # Every frame counts outside LIVE_STREAM: reliable from reliable publishers, unless the
        # parameters say otherwise.
        overridden = 'qos_overrides.%s.subscription.reliability' % self._input_topic in \
            self._parameter_overrides
        follow = config.running_mode != RunningMode.LIVE_STREAM and not overridden
        self._input = InputSubscription(
            self, self._input_topic, input_qos, lambda qos: self._create_overridable(
                self.create_subscription, 'subscription',
                CompressedImage if compressed else Image, self._input_topic, qos,
                SubscriptionEventCallbacks, callback=self._on_image,
                raw=not compressed,  # an Image is read in place from its bytes (image_cdr)
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
            config = self._pipeline.config
            if config.running_mode != RunningMode.LIVE_STREAM:
                self.get_logger().warning(
                    'Input queue full (queue_size %d): dropped the oldest frame; processing is '
                    'slower than %s.' % (config.queue_size, self._input_topic),
                    throttle_duration_sec=WARN_PERIOD_SEC)

    def _work(self) -> None:
        queue = self._queue
        while True:
            msg = queue.get()
            if msg is None:
                return
            settings = self._read_settings() if self._settings_per_frame else self._settings
            with self._frame_lock:  # a new configuration is switched to between frames
                if self._pipeline is None:  # cleaned up
                    return
                try:
                    self._process(msg, settings, self._pipeline)
                except Exception as error:  # The worker must outlive any single frame.
                    if self._stopping or not self.context.ok():  # publishers gone, not broken
                        return
                    reason = '%s: %s' % (type(error).__name__, str(error).strip())
                    self._stats.count('failed', reason)
                    self.get_logger().error(
                        'Failed to process a frame from %s (%s); it was not published, the '
                        'next frame is processed as usual.' % (self._input_topic, reason),
                        throttle_duration_sec=WARN_PERIOD_SEC)

    def _wanted(self, pipeline: _Pipeline) -> Tuple[bool, List[int], bool]:
        """Which outputs have subscribers: category mask, confidence indices, overlay."""
        category = bool(pipeline.category_pub and pipeline.category_pub.get_subscription_count())
        confidences = [index for index, pub in enumerate(pipeline.confidence_pubs)
                       if pub.get_subscription_count()]
        return category, confidences, self._overlay_pub.get_subscription_count() > 0

    def _process(self, msg: Any, settings: _FrameSettings, pipeline: _Pipeline) -> None:
        category, confidences, overlay = self._wanted(pipeline)
        if not (category or confidences or overlay):
            self._stats.count('skipped')
            return
        start = time.perf_counter()
        try:
            if isinstance(msg, bytes):
                msg = image_from_cdr(msg)
            image = message_to_array(msg, settings.max_input_pixels)
            result = self._segment(pipeline, image, msg.header.stamp, confidences,
                                   category or overlay, settings.rotation_degrees)
        except (InvalidImageError, ValueError) as error:
            self._reject(str(error))
            return
        if result is None:
            return
        if confidences and not result.confidences_finite:
            raise FloatingPointError('the model produced NaN or infinite confidences')
        header = msg.header
        if category:
            pipeline.category_pub.publish(category_message(header, result))
        for index in confidences:
            pipeline.confidence_pubs[index].publish(confidence_message(header, result, index))
        if overlay:
            self._overlay_pub.publish(overlay_message(
                header, image, result, settings.overlay_alpha, getattr(msg, 'encoding', None)))
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

    def _segment(self, pipeline: _Pipeline, image: np.ndarray, stamp: Any,
                 confidences: List[int], category: bool,
                 rotation: int) -> Optional[ImageSegmenterResult]:
        """
        Run the engine for the requested masks; None when a VIDEO frame must be skipped.

        Only the confidence masks of ``confidences`` (the classes with subscribers) are made.
        """
        wanted = {'output_confidence_masks': bool(confidences),
                  'output_category_mask': category, 'confidence_classes': confidences}
        if pipeline.config.running_mode != RunningMode.VIDEO:
            return pipeline.segmenter.segment(image, rotation, **wanted)
        timestamp = stamp_to_ms(stamp)
        last = pipeline.last_stamp_ms
        if last is not None and timestamp <= last:
            if timestamp == last:
                self._reject('its stamp (%d ms) is in the same millisecond as the previous '
                             "frame's; VIDEO mode needs increasing stamps" % timestamp)
                return None
            self._stats.count('time_jumps')
            self.get_logger().warning(
                'Time went backwards on %s (%d ms -> %d ms, a looping bag or a simulator '
                'reset?): restarting the segmenter.' % (self._input_topic, last, timestamp))
            pipeline.segmenter.close()
            pipeline.segmenter = self._create_segmenter(pipeline.config)
        pipeline.last_stamp_ms = timestamp
        return pipeline.segmenter.segment_for_video(image, timestamp, rotation, **wanted)

    # Diagnostics

    def _publish_diagnostics(self) -> None:
        counts, processing, latency = self._stats.snapshot()
        self._recent_counts.append(counts)
        pipeline = self._pipeline
        if self._state == 'active':
            level, message = diagnostic_status(
                counts, self._recent_counts[0], len(self._recent_counts) - 1,
                pipeline.config.running_mode != RunningMode.LIVE_STREAM, self._input_topic,
                self._input.publisher_count(), np.median(latency) if latency else None)
        elif self._last_problem:
            level, message = DiagnosticStatus.ERROR, 'Unconfigured: ' + self._last_problem
        else:
            level, message = DiagnosticStatus.OK, '%s: %s' % (self._state.capitalize(), (
                'model loaded, no frame taken' if pipeline else 'no model loaded'))
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
        model = ''
        if pipeline is not None:
            category, confidences, overlay = self._wanted(pipeline)
            subscribed = ((['category_mask'] if category else []) +
                          [pipeline.confidence_topics[index] for index in confidences] +
                          (['overlay'] if overlay else []))
            model = pipeline.config.model
            values += [KeyValue(key='outputs with subscribers',
                                value=', '.join(subscribed) or 'none'),
                       KeyValue(key='model', value=model),
                       KeyValue(key='running mode', value=pipeline.config.running_mode.name)]
        values += [KeyValue(key='state', value=self._state),
                   KeyValue(key='input topic', value=self._input_topic),
                   KeyValue(key='input reliability', value=self._input.reliability
                            if self._input else 'none (not subscribed)'),
                   KeyValue(key='last reconfiguration', value=self._last_change)]
        status = DiagnosticStatus(level=level, name='%s: segmentation' % (
            self.get_fully_qualified_name()), message=message, hardware_id=model,
            values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def set_parameters_atomically(self, parameter_list: List[Parameter]) -> SetParametersResult:
        """
        Set parameters (what the parameter services call); refusals in the start-up sentence.

        rclpy refuses wrong types and values out of range in words of its own.
        """
        result = super().set_parameters_atomically(parameter_list)
        if result.successful or result.reason.startswith(("Parameter '", "Parameters '")):
            return result
        for parameter in parameter_list:
            spec = BY_NAME.get(parameter.name)
            if spec is not None and not spec.read_only and spec.validate(parameter.value):
                return SetParametersResult(successful=False,
                                           reason=spec.validate(parameter.value))
        return result


class ImageSegmenterNode(SegmenterCore, Node):
    """Segments every (or the newest) camera frame and publishes masks with its header."""

    def __init__(self, **kwargs: Any):
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._declare()
            self._configure()
            self._activate()
        except BaseException:
            # A node that cannot start gives its DDS entities back now, while rclpy still
            # runs, not to the garbage collector after shutdown.
            self._stop_worker()
            Node.destroy_node(self)
            raise

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()


def run(stop: Any, args: Optional[List[str]] = None,
        node_class: Callable[[], Node] = ImageSegmenterNode) -> int:
    """
    Run the node until a signal; return the exit code: 0, or 1 with one sentence on a bad setup.

    ``stop`` is the installed handler (``main.StopSignals``); setting its ``stopping`` before
    the cleanup makes every later signal harmless, so nothing interrupts it. ``node_class``
    is the plain or the lifecycle node.
    """
    code = 0
    executor = node = None
    try:
        # Masks, messages and DDS buffers of every frame then reuse freed memory: at 720p this
        # halves the node's processing time (page faults of fresh mmaps otherwise).
        keep_freed_memory()
        opencv_on_calling_thread()  # at camera rates, less CPU per frame than OpenCV's pool
        rclpy.init(args=args)
        stop.interrupts = False  # rclpy's handler shuts the context down from here on
        # Created before the slow start-up (model, topics): a signal that shuts the context
        # down while an executor is being built leaves a half-built one rclpy reports on exit.
        executor = SingleThreadedExecutor()
        node = node_class()
        rclpy.spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigurationError as error:
        stop.stopping = True
        rclpy.logging.get_logger('image_segmenter').fatal(str(error))
        code = 1
    except Exception:
        if rclpy.ok() and not stop.stopping:
            raise
        # SIGINT or SIGTERM arrived while the node was starting: rclpy's calls fail on the
        # context its handler shut down.
    finally:
        stop.stopping = True
        if node is not None and code == 0:
            _exit_without_dds_teardown(node)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def _exit_without_dds_teardown(node: Node) -> None:
    """
    End the process once the worker has stopped and the model is freed, leaving DDS to the OS.

    A signal stops ``ros2 launch`` and its own ROS node together with ours, and Fast DDS then
    delivers the peer's departure to our publishers' listeners on its own threads while rclpy
    destroys those publishers: a race inside rmw_fastrtps (ros2/rmw_fastrtps#717) that ended
    the process with SIGSEGV in a few stops of a hundred. Nothing is lost by not destroying the
    DDS entities of a process that is ending: the operating system frees them, except the
    shared-memory segments, which ``_remove_own_shared_memory`` removes.
    """
    node._release()
    _remove_own_shared_memory()
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)  # the C streams rcutils and LiteRT write to
    os._exit(0)


def _remove_own_shared_memory() -> None:
    """
    Unlink the Fast DDS shared-memory segments this process created, as DDS teardown does.

    They are files in ``/dev/shm``, so memory: left behind, every stop would keep about 18 MB
    (the large-image profile's segment and the default one) until a reboot or ``fastdds shm
    clean``. A segment's creator holds its ``fastrtps_<id>_el`` lock file open; peers only map
    the segment, and keep their mapping after the unlink. Port files are shared and reused.
    """
    try:
        descriptors = os.listdir('/proc/self/fd')
    except OSError:  # not Linux
        return
    for descriptor in descriptors:
        try:
            lock = os.readlink('/proc/self/fd/' + descriptor)
        except OSError:
            continue
        folder, name = os.path.split(lock)
        if (folder == '/dev/shm' and name.startswith('fastrtps_') and name.endswith('_el')
                and not name.startswith('fastrtps_port')):
            for path in (lock[:-len('_el')], lock):
                try:
                    os.unlink(path)
                except OSError:
                    pass

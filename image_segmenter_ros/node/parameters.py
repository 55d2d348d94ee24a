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
The segmenter's parameters, shared by the node and the offline tools.

One table gives names, defaults, descriptors and the one-sentence errors, so a parameter
file from config/ means the same to ``image_segmenter_node`` and to ``segment_bag``.
"""

from dataclasses import dataclass
import math
import os
from pathlib import Path
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import yaml

from ..engine import ImageSegmenter, ImageSegmenterOptions, model_catalog, RunningMode

NODE_NAME = 'image_segmenter'
# The legacy Selfie Segmentation option `model_selection`: 0 general, 1 landscape.
MODEL_SELECTION = ('selfie_segmentation', 'selfie_segmentation_landscape')
RUNNING_MODES = tuple(mode.name for mode in RunningMode)
INPUT_TRANSPORTS = ('raw', 'compressed')
# rclpy's tolerance at the edges of a floating point range (Node.PARAM_REL_TOL).
_FLOAT_EDGE_TOLERANCE = 1e-6


class ConfigurationError(Exception):
    """A parameter value or model the segmenter cannot start with; the message is one sentence."""


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: default (which fixes its type), help, constraints, run-time changes."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: Tuple[Any, ...] = ()
    integer_range: Optional[Tuple[int, int, int]] = None
    float_range: Optional[Tuple[float, float]] = None
    pattern: Optional[Tuple[str, str]] = None  # regular expression, what it allows in words

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.choices:
            descriptor.additional_constraints = 'One of: %s.' % ', '.join(map(str, self.choices))
        if self.integer_range:
            low, high, step = self.integer_range
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=step)]
        if self.float_range:
            low, high = self.float_range
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=low, to_value=high, step=0.0)]
        return descriptor

    def coerce(self, value: Any) -> Any:
        """
        Return ``value`` as this parameter's type where ROS typed it too narrowly.

        A whole number without a decimal point (``overlay_alpha: 1`` in a params file,
        ``-p overlay_alpha:=1``, ``ros2 param set ... 1``) is an integer to ROS; a
        floating-point parameter takes it as the same number.
        """
        if isinstance(self.default, float) and type(value) is int:
            return float(value)
        return value

    def allowed(self) -> str:
        """Describe the allowed values, for error messages."""
        if self.choices:
            return 'one of ' + ', '.join(map(str, self.choices))
        if self.integer_range:
            low, high, step = self.integer_range
            return 'an integer from %d to %d%s' % (low, high,
                                                   ' in steps of %d' % step if step > 1 else '')
        if self.float_range:
            return 'a floating-point number from %r to %r' % tuple(map(float, self.float_range))
        if self.pattern:
            return self.pattern[1]
        return {bool: 'true or false', str: 'a string',
                list: 'a list of strings'}[type(self.default)]

    def problem(self, value_text: str) -> str:
        return "Parameter '%s' must be %s, got %s." % (self.name, self.allowed(), value_text)

    def check(self, value: Any) -> Optional[str]:
        """Return why ``value`` is not allowed, or None (rclpy checks types and ranges)."""
        if self.choices and value not in self.choices:
            return self.problem(repr(value))
        if self.pattern and not re.fullmatch(self.pattern[0], value):
            return self.problem(repr(value))
        return None

    def validate(self, value: Any) -> Optional[str]:
        """
        Return why ``value`` is not allowed, or None, without a node.

        Applies rclpy's type and range rules before ``check``, and words every rejection as
        the node does at start-up, so tools without a ROS graph refuse what the node refuses.
        """
        value = self.coerce(value)
        if type(value) is not type(self.default):
            return self.problem(str(value))
        if self.integer_range:
            low, high, step = self.integer_range
            if value not in (low, high) and not (low < value < high and
                                                 (value - low) % step == 0):
                return self.problem(str(value))
        if self.float_range:
            low, high = self.float_range
            at_edge = any(math.isclose(value, edge, rel_tol=_FLOAT_EDGE_TOLERANCE)
                          for edge in (low, high))
            if not (at_edge or low < value < high):
                return self.problem(str(value))
        return self.check(value)


def default_model_directories() -> List[str]:
    """Return the model cache and the package's share folder of models, where installed."""
    folders = [str(model_catalog.model_dir())]
    try:
        from ament_index_python.packages import get_package_share_directory
        folders.append(os.path.join(get_package_share_directory(model_catalog.PACKAGE_NAME),
                                    'models'))
    except (ImportError, LookupError, OSError):  # no ament index: the cache only
        pass
    return folders


PARAMETERS = (
    ParameterSpec('model', '', 'Segmentation model: a short name from models/manifest.yaml '
                  '(e.g. selfie_segmentation, selfie_multiclass_256x256) or a .tflite path; '
                  'empty: the model chosen by model_selection.'),
    ParameterSpec('model_selection', 0, 'Legacy Selfie Segmentation option, used when model '
                  'is empty: 0 general (256x256, selfie_segmentation), 1 landscape (144x256, '
                  'selfie_segmentation_landscape).', integer_range=(0, 1, 1)),
    ParameterSpec('running_mode', 'LIVE_STREAM', 'LIVE_STREAM: segment the newest frame, drop '
                  'stale ones; VIDEO: every frame in order, timestamps from header.stamp; '
                  'IMAGE: every frame independently.', choices=RUNNING_MODES),
    ParameterSpec('output_category_mask', True, 'Publish category_mask (mono8, class index '
                  'per pixel).'),
    ParameterSpec('output_confidence_masks', True, 'Publish confidence_masks/<label> (32FC1), '
                  'one topic per class.'),
    ParameterSpec('display_names_locale', 'en', 'Locale of the class display names in the '
                  'labels topic, when the model metadata has them.',
                  pattern=(r'[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*',
                           'a locale such as en, fr or zh-Hans')),
    ParameterSpec('rotation_degrees', 0, 'Clockwise rotation that makes the camera image '
                  'upright; masks stay in the input image frame.', read_only=False,
                  integer_range=(0, 270, 90)),
    ParameterSpec('num_threads', 1, 'CPU threads of the inference runtime. 1: at 30 Hz the '
                  'least CPU per frame, and for the selfie models as fast as 2 '
                  '(docs/benchmarks.md).',
                  integer_range=(1, 64, 1)),
    ParameterSpec('overlay_alpha', 0.5, 'Opacity of the class colours on the overlay topic.',
                  read_only=False, float_range=(0.0, 1.0)),
    ParameterSpec('input_transport', 'raw', 'raw: subscribe to image (sensor_msgs/Image); '
                  'compressed: subscribe to image/compressed (jpeg or png).',
                  choices=INPUT_TRANSPORTS),
    ParameterSpec('queue_size', 10, 'Frames waiting in VIDEO and IMAGE modes; when full the '
                  'oldest is dropped, counted and warned about (LIVE_STREAM always keeps only '
                  'the newest).', integer_range=(1, 1000, 1)),
    ParameterSpec('max_input_pixels', 4096 * 4096, 'Largest input (width x height) accepted; '
                  'larger frames are rejected from their header, before any decoding or '
                  'allocation.', read_only=False, integer_range=(1, 1 << 28, 1)),
    ParameterSpec('model_directories', default_model_directories(), 'The only folders from '
                  'which a run-time change of model may load a file (models of the manifest '
                  'are always allowed); fixed at start-up, since parameter services answer '
                  'anyone on the DDS domain.', read_only=True),
)
BY_NAME = {param.name: param for param in PARAMETERS}


def startup_problem(param: ParameterSpec, rclpy_message: str) -> str:
    """Turn rclpy's rejection of a parameter override into our one-sentence message."""
    if "Parameter '%s' must be" % param.name in rclpy_message:  # our own check
        return rclpy_message.split('Reason: ', 1)[-1].rsplit(': ' + param.name, 1)[0]
    value = re.search(r"value \((.*)\) for parameter|to '(.*)' of type", rclpy_message)
    return param.problem(next(v for v in value.groups() if v is not None) if value
                         else '(%s)' % rclpy_message)


# The per-topic QoS overrides the node accepts, ``qos_overrides.<topic>.<side>.<policy>``.
QOS_OVERRIDE_VALUES = {
    'reliability': 'one of reliable, best_effort, system_default',
    'durability': 'one of volatile, transient_local, system_default',
    'history': 'one of keep_last, keep_all, system_default',
    'depth': 'a positive integer',
}


# Fast DDS keeps a history depth in a signed 32-bit integer.
_MAX_DEPTH = 2**31 - 1


def qos_override_value_problem(name: str, value: Any) -> Optional[str]:
    """
    Return why a ``qos_overrides`` depth cannot be used, or None.

    Checked before any topic is created: rmw refuses a negative depth only after printing an
    rcutils error block, and rclpy turns 0 into the system default with a warning.
    """
    if not (name.startswith('qos_overrides.') and name.endswith('.depth')):
        return None
    if type(value) is int and 0 < value <= _MAX_DEPTH:
        return None
    return "Parameter '%s' must be %s, got %s." % (name, QOS_OVERRIDE_VALUES['depth'], value)


def qos_override_problem(topic: str, side: str, rclpy_message: str,
                         overridden: bool) -> Optional[str]:
    """
    Turn rclpy's rejection of a QoS override of ``topic`` into our one-sentence message.

    None when the message names no policy and no override changed the profile: then the
    failure is not the overrides' fault.
    """
    policy = re.search(r"policy `(\w+)`|\.%s\.(\w+)'" % side, rclpy_message)
    policy = next((name for name in policy.groups() if name), '') if policy else ''
    value = re.search(r": `(.*)`$|to '(.*)' of type", rclpy_message)
    value = next(v for v in value.groups() if v is not None) if value else None
    if policy in QOS_OVERRIDE_VALUES and value is not None:
        return "Parameter 'qos_overrides.%s.%s.%s' must be %s, got %s." % (
            topic, side, policy, QOS_OVERRIDE_VALUES[policy], value)
    if not overridden:
        return None
    return "Parameters 'qos_overrides.%s.%s.*' were refused (%s): %s." % (
        topic, side, rclpy_message.strip(), ', '.join(
            '%s must be %s' % item for item in QOS_OVERRIDE_VALUES.items()))


def check_outputs(value: Callable[[str], Any]) -> None:
    """Refuse a configuration that would publish nothing (``value`` reads a parameter)."""
    if not (value('output_category_mask') or value('output_confidence_masks')):
        raise ConfigurationError("Parameters 'output_category_mask' and "
                                 "'output_confidence_masks' are both false: enable at "
                                 'least one.')


def run_time_model_problem(model: str, directories: Sequence[str]) -> Optional[str]:
    """
    Return why ``model`` may not be loaded at run time, or None.

    Parameter services answer anyone on the DDS domain, so a run-time change must not make
    the node open any file: a model of the manifest, or a file under ``directories``.
    """
    names = model_catalog.load_manifest()
    if model in names and not Path(model).is_file():  # a file of that name would win
        return None
    path = Path(model).resolve()
    if any(path.is_relative_to(Path(folder).resolve()) for folder in directories if folder):
        return None
    return ("Parameter 'model' (%r): at run time only a model of the manifest (%s) or a file "
            "under %s (parameter 'model_directories', fixed at start-up) may be loaded."
            % (model, ', '.join(names), ' or '.join(directories) or 'no folder'))


def model_name(value: Callable[[str], Any]) -> str:
    """Return the model to load: ``model``, else the legacy ``model_selection``."""
    return value('model') or MODEL_SELECTION[value('model_selection')]


def create_segmenter(value: Callable[[str], Any], running_mode: RunningMode,
                     num_threads: Optional[int] = None) -> ImageSegmenter:
    """
    Create the engine the parameters describe; a bad model is one ConfigurationError.

    ``num_threads`` replaces the parameter's value, for callers that run several engines.
    """
    model = model_name(value)
    options = ImageSegmenterOptions(
        model_path=model, running_mode=running_mode,
        output_category_mask=value('output_category_mask'),
        output_confidence_masks=value('output_confidence_masks'),
        display_names_locale=value('display_names_locale'),
        num_threads=num_threads or value('num_threads'))
    try:
        return ImageSegmenter.create_from_options(options)
    except (ValueError, FileNotFoundError, RuntimeError, NotImplementedError) as error:
        raise ConfigurationError("Parameter 'model' (%r): %s" % (model, error)) from None


def load_parameters(params_file: Optional[Path] = None,
                    overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """
    Read the node's parameters from a ROS parameter file, validated, with defaults filled in.

    The file is read like ``--params-file`` (YAML types as rcl reads them: a quoted 'yes' is
    a string): entries under ``/**`` and under any node named ``image_segmenter`` apply,
    other parameters (qos_overrides, ...) are ignored, and ``overrides`` act like
    ``-p name:=value``. Raises ConfigurationError with the node's
    sentence for the first invalid value.
    """
    values = {param.name: param.default for param in PARAMETERS}
    if params_file is not None:
        try:
            content = yaml.safe_load(Path(params_file).read_text())
            if not isinstance(content, dict):
                raise TypeError('not a ROS parameter file (no node names at the top level)')
            # Wildcard entries first, so that entries naming the node win, as in rcl.
            for key in sorted(content, key=lambda key: key != '/**'):
                if key != '/**' and str(key).rstrip('/').rsplit('/', 1)[-1] != NODE_NAME:
                    continue
                entry = content[key]
                if not isinstance(entry, dict) or 'ros__parameters' not in entry:
                    raise TypeError('%s has no ros__parameters' % key)
                values.update((name, value) for name, value in entry['ros__parameters'].items()
                              if name in BY_NAME)
        except (OSError, yaml.YAMLError, TypeError) as error:
            raise ConfigurationError('Cannot read parameters file %s: %s'
                                     % (params_file, error)) from None
    values.update(overrides or {})
    for name, value in values.items():
        reason = BY_NAME[name].validate(value)
        if reason:
            raise ConfigurationError(reason)
        values[name] = BY_NAME[name].coerce(value)
    check_outputs(values.get)
    return values

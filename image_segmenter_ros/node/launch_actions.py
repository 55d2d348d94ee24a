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
The launch arguments and the node action that every launch file of the package shares.

Each node parameter of parameters.PARAMETERS is a launch argument, empty unless the user sets
it: an unset argument leaves the params file's value, a set one overrides it (typed as the
parameter, and refused in the node's own sentence when not allowed).
"""

import os
import re
from typing import Any, Dict, List

from ament_index_python.packages import get_package_share_directory
from launch.action import Action
from launch.actions import DeclareLaunchArgument, EmitEvent, GroupAction, RegisterEventHandler
from launch.events import matches_action
from launch.launch_context import LaunchContext
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition
import yaml

from .main import STOP_WITH_LAUNCH
from .parameters import ConfigurationError, NODE_NAME, PARAMETERS, ParameterSpec

PACKAGE = 'image_segmenter_ros'
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
# One or more ROS name tokens: letters, digits and underscores, not starting with a digit.
_NAMESPACE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*')


def _config(name: str) -> str:
    return os.path.join(get_package_share_directory(PACKAGE), 'config', name)


def node_arguments(image_topic_default: str) -> List[DeclareLaunchArgument]:
    """Declare the arguments of one node: files, topic, logging, then every parameter."""
    return [
        DeclareLaunchArgument(
            'params_file', default_value=_config('selfie_segmentation.yaml'),
            description='Parameters YAML (one per model in the config directory).'),
        DeclareLaunchArgument(
            'image_topic', default_value=image_topic_default,
            description='Camera topic remapped onto the node input `image`, a relative one '
                        'under the namespace (with input_transport compressed, '
                        '<image_topic>/compressed is read).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='', choices=['', 'true', 'false'],
            description='Use /clock (bags, simulators); unset: the params file value, else '
                        'false.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=list(LOG_LEVELS),
            description='Log level of the node.'),
        DeclareLaunchArgument(
            'lifecycle', default_value='false', choices=['true', 'false'],
            description='true: the managed (lifecycle) node, unconfigured until a lifecycle '
                        'manager, ros2 lifecycle or autostart moves it.'),
        DeclareLaunchArgument(
            'autostart', default_value='true', choices=['true', 'false'],
            description='With lifecycle:=true, configure and activate the node at start (as '
                        "Nav2's lifecycle manager's autostart); false: leave it unconfigured."),
        DeclareLaunchArgument(
            'dds_profile', default_value=EnvironmentVariable(
                'FASTRTPS_DEFAULT_PROFILES_FILE', default_value=EnvironmentVariable(
                    'FASTDDS_DEFAULT_PROFILES_FILE',
                    default_value=_config('fastdds_large_images.xml'))),
            description='Fast DDS XML profile of the node (default: the one already in the '
                        'environment, else shared memory large enough for whole images); '
                        'none: the environment as it is.'),
    ] + [
        DeclareLaunchArgument(
            spec.name, default_value='',
            description='%s Unset: the params file value, else %s.' % (
                spec.description, _shown(spec.default)))
        for spec in PARAMETERS]


def _shown(value: Any) -> str:
    """Write a default as it is typed on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def _typed(spec: ParameterSpec, text: str) -> Any:
    """Read an argument as ``-p name:=text`` does, typed as the parameter (1 is 1.0 if float)."""
    value = text
    if not isinstance(spec.default, str):
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            pass
        if isinstance(spec.default, float) and type(value) is int:
            value = float(value)
    problem = spec.validate(value)
    if problem:
        raise ConfigurationError(problem)
    return value


def parameter_overrides(context: LaunchContext) -> Dict[str, Any]:
    """Return the parameters whose arguments the user set; the params file keeps the others."""
    overrides = {spec.name: _typed(spec, text) for spec in PARAMETERS
                 for text in [LaunchConfiguration(spec.name).perform(context)] if text}
    use_sim_time = LaunchConfiguration('use_sim_time').perform(context)
    if use_sim_time:
        overrides['use_sim_time'] = use_sim_time == 'true'
    return overrides


def _dds_environment(context: LaunchContext) -> Dict[str, str]:
    """Point Fast DDS 2.x and 3.x at the profile; none (or empty) leaves the environment alone."""
    profile = LaunchConfiguration('dds_profile').perform(context)
    return ({'FASTRTPS_DEFAULT_PROFILES_FILE': profile,
             'FASTDDS_DEFAULT_PROFILES_FILE': profile} if profile not in ('', 'none') else {})


def node_action(context: LaunchContext, namespace: str) -> Action:
    """
    Build the one node the arguments describe, under ``namespace``.

    Every launch file starts its nodes here, so a node variant is added in this one place.
    """
    lifecycle = LaunchConfiguration('lifecycle').perform(context) == 'true'
    node = (LifecycleNode if lifecycle else Node)(
        package=PACKAGE,
        executable='image_segmenter_lifecycle_node' if lifecycle else 'image_segmenter_node',
        name=NODE_NAME,
        namespace=namespace,
        parameters=[LaunchConfiguration('params_file').perform(context),
                    parameter_overrides(context)],
        remappings=[('image', LaunchConfiguration('image_topic').perform(context))],
        ros_arguments=['--log-level', LaunchConfiguration('log_level').perform(context)],
        additional_env={**_dds_environment(context), STOP_WITH_LAUNCH: '1'},
        output='screen',
    )
    if not (lifecycle and LaunchConfiguration('autostart').perform(context) == 'true'):
        return node

    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition))
    # Configure at start, activate once configured (not after a later deactivate).
    return GroupAction([node, RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
        entities=[change(Transition.TRANSITION_ACTIVATE)])),
        change(Transition.TRANSITION_CONFIGURE)], scoped=False)


def camera_names(text: str) -> List[str]:
    """Split a comma-separated camera list; refuse names that are not ROS namespaces."""
    cameras = [name.strip().strip('/') for name in text.split(',') if name.strip()]
    if not cameras:
        raise ConfigurationError("Argument 'cameras' names no camera: give comma-separated "
                                 'namespaces, e.g. cameras:=front,rear.')
    for name in cameras:
        if not _NAMESPACE.fullmatch(name):
            raise ConfigurationError(
                "Argument 'cameras' has %r, which is not a ROS namespace: use letters, digits "
                'and underscores, not starting with a digit, e.g. front, rear_left, cam1 '
                '(nested: robot1/front).' % name)
    if len(set(cameras)) != len(cameras):
        raise ConfigurationError("Argument 'cameras' names a camera twice (%s): each camera "
                                 'gets one node.' % text)
    return cameras

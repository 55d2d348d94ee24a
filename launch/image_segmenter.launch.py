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
Launch one image_segmenter node on one camera.

ros2 launch image_segmenter_ros image_segmenter.launch.py image_topic:=/camera/image_raw
It runs the same command as ``image_segmenter_node --ros-args --params-file <params_file>
-r image:=<image_topic> [-p model:=...] [-p running_mode:=...]``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node


def _overrides(context) -> dict:
    """Parameters given on the command line; empty ones leave the params file's values."""
    values = {name: LaunchConfiguration(name).perform(context)
              for name in ('model', 'running_mode')}
    overrides = {name: value for name, value in values.items() if value}
    overrides['use_sim_time'] = LaunchConfiguration('use_sim_time').perform(context) == 'true'
    return overrides


def _dds_environment(context) -> dict:
    """Point Fast DDS 2.x and 3.x at the profile; an empty one leaves the environment alone."""
    profile = LaunchConfiguration('dds_profile').perform(context)
    return ({'FASTRTPS_DEFAULT_PROFILES_FILE': profile,
             'FASTDDS_DEFAULT_PROFILES_FILE': profile} if profile else {})


def _node(context):
    return [Node(
        package='image_segmenter_ros',
        executable='image_segmenter_node',
        name='image_segmenter',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), _overrides(context)],
        remappings=[('image', LaunchConfiguration('image_topic'))],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
        additional_env=_dds_environment(context),
        output='screen',
    )]


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory('image_segmenter_ros'), 'config')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(config, 'selfie_segmentation.yaml'),
            description='Parameters YAML (one per model in the config directory).'),
        DeclareLaunchArgument(
            'model', default_value='',
            description='Model short name or .tflite path; empty keeps the params file value.'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera topic remapped onto the node input `image` (with '
                        'input_transport compressed, <image_topic>/compressed is read).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node and of its relative output topics.'),
        DeclareLaunchArgument(
            'running_mode', default_value='', choices=['', 'LIVE_STREAM', 'VIDEO', 'IMAGE'],
            description='LIVE_STREAM, VIDEO or IMAGE; empty keeps the params file value.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', choices=['true', 'false'],
            description='Use /clock (bags, simulators).'),
        DeclareLaunchArgument(
            'dds_profile', default_value=EnvironmentVariable(
                'FASTRTPS_DEFAULT_PROFILES_FILE', default_value=EnvironmentVariable(
                    'FASTDDS_DEFAULT_PROFILES_FILE',
                    default_value=os.path.join(config, 'fastdds_large_images.xml'))),
            description='Fast DDS XML profile of the node (default: the one already in the '
                        'environment, else shared memory large enough for whole images); '
                        'empty: the environment as it is.'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            choices=['debug', 'info', 'warn', 'error', 'fatal'],
            description='Log level of the node.'),
        OpaqueFunction(function=_node),
    ])

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
Launch one image_segmenter node per camera, each under the camera's namespace.

ros2 launch image_segmenter_ros multi_camera.launch.py cameras:=front,rear
Camera ``front`` reads /front/image_raw and publishes /front/category_mask, and so on.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    cameras = [name.strip() for name in
               LaunchConfiguration('cameras').perform(context).split(',') if name.strip()]
    use_sim_time = LaunchConfiguration('use_sim_time').perform(context) == 'true'
    return [Node(
        package='image_segmenter_ros',
        executable='image_segmenter_node',
        name='image_segmenter',
        namespace=camera,
        parameters=[LaunchConfiguration('params_file'), {'use_sim_time': use_sim_time}],
        remappings=[('image', LaunchConfiguration('image_topic'))],
        ros_arguments=['--log-level', LaunchConfiguration('log_level')],
        output='screen',
    ) for camera in cameras]


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory('image_segmenter_ros'), 'config')
    return LaunchDescription([
        DeclareLaunchArgument(
            'cameras', default_value='front,rear',
            description='Comma-separated camera namespaces, one node each.'),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(config, 'selfie_segmentation.yaml'),
            description='Parameters YAML shared by every camera (its `/**` matches all).'),
        DeclareLaunchArgument(
            'image_topic', default_value='image_raw',
            description='Camera topic, relative to each camera namespace.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', choices=['true', 'false'],
            description='Use /clock (bags, simulators).'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            choices=['debug', 'info', 'warn', 'error', 'fatal'],
            description='Log level of every node.'),
        OpaqueFunction(function=_nodes),
    ])

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
Camera ``front`` reads /front/image_raw and publishes /front/category_mask, and so on. Each
camera is image_segmenter.launch.py with its namespace; its other arguments (params_file,
model, running_mode, use_sim_time, log_level) pass through to every camera.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, GroupAction, IncludeLaunchDescription,
                            OpaqueFunction)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def _cameras(context):
    single = os.path.join(get_package_share_directory('image_segmenter_ros'), 'launch',
                          'image_segmenter.launch.py')
    cameras = [name.strip() for name in
               LaunchConfiguration('cameras').perform(context).split(',') if name.strip()]
    # One scope per camera, so each include sees its own namespace.
    image_topic = LaunchConfiguration('image_topic')
    return [
        GroupAction([IncludeLaunchDescription(
            PythonLaunchDescriptionSource(single),
            launch_arguments={'namespace': camera, 'image_topic': image_topic}.items())])
        for camera in cameras]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument(
            'cameras', default_value='front,rear',
            description='Comma-separated camera namespaces, one node each.'),
        DeclareLaunchArgument(
            'image_topic', default_value='image_raw',
            description='Camera topic, relative to each camera namespace.'),
        OpaqueFunction(function=_cameras),
    ])

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
Camera ``front`` reads /front/image_raw and publishes /front/category_mask, and so on. The
other arguments are those of image_segmenter.launch.py and apply to every camera.
"""

from image_segmenter_ros.node.launch_actions import camera_names, node_action, node_arguments
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration


def _cameras(context):
    return [node_action(context, camera)
            for camera in camera_names(LaunchConfiguration('cameras').perform(context))]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument(
            'cameras', default_value='front,rear',
            description='Comma-separated camera namespaces, one node each.'),
        *node_arguments(image_topic_default='image_raw'),
        OpaqueFunction(function=_cameras),
    ])

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
It runs ``image_segmenter_node --ros-args --params-file <params_file> -r image:=<image_topic>``
with ``-p name:=value`` for each parameter argument given (``--show-args`` lists them); an
argument left unset keeps the params file's value.
"""

from image_segmenter_ros.node.launch_actions import node_action, node_arguments
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration


def _node(context):
    return [node_action(context, LaunchConfiguration('namespace').perform(context))]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node and of its relative output topics.'),
        *node_arguments(image_topic_default='/camera/image_raw'),
        OpaqueFunction(function=_node),
    ])

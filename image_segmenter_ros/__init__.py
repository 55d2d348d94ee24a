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
MediaPipe Image Segmenter models on LiteRT, as a pure-Python engine and a ROS 2 node.

Three layers: ``engine`` (no ROS), ``node`` (the rclpy node and its glue) and ``tools``
(bag tools and the demo). The engine's names below are loaded on first use, so that the
executables can take over Ctrl-C before NumPy, OpenCV and LiteRT are imported.
"""

from typing import Any

__all__ = ['ImageSegmenter', 'ImageSegmenterOptions', 'ImageSegmenterResult', 'RunningMode',
           'keep_freed_memory']


def __getattr__(name: str) -> Any:
    """Load the engine when one of its names is first read from this package."""
    if name not in __all__:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    from . import engine
    return getattr(engine, name)

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
The engine: MediaPipe's Image Segmenter task on LiteRT, with MediaPipe's API and no ROS import.

Models, preprocessing, inference and postprocessing live here; the ROS node and the bag tools
are built on this package and nothing in it knows about them.
"""

from .memory import keep_freed_memory
from .segmenter import (ImageSegmenter, ImageSegmenterOptions, ImageSegmenterResult,
                        RunningMode)
from .threads import opencv_on_calling_thread

__all__ = ['ImageSegmenter', 'ImageSegmenterOptions', 'ImageSegmenterResult', 'RunningMode',
           'keep_freed_memory', 'opencv_on_calling_thread']

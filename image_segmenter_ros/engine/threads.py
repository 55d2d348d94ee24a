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

"""Process-wide thread setting that keeps frames at a camera's rate cheap."""

import cv2


def opencv_on_calling_thread() -> None:
    """
    Run OpenCV's functions on the thread that calls them, without its worker pool.

    At a camera's rate the pool's threads fall asleep between frames, and every resize of a
    mask wakes them again: that costs more CPU per frame, and more time from idle, than the
    work they share (measured at 30 Hz in docs/benchmarks.md). The node calls this at
    start-up; results are the same either way. It applies to the whole process.
    """
    cv2.setNumThreads(1)

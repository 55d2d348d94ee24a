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
BASELINE for the benchmarks, not part of the package: the node a user writes in an afternoon.

An rclpy node around MediaPipe Tasks' ImageSegmenter in LIVE_STREAM mode, written the way the
common MediaPipe ROS wrappers are, competently: one segmenter for the node's life, the frame
read with ``numpy.frombuffer`` (no copy; bgr8 converted once by OpenCV), sensor-data QoS on the
input, every mask published from the result callback as an Image with the input's header
(category mono8 first, then each confidence mask 32FC1, on the topics given). It runs with the
same Fast DDS profile as the package's node when the environment names one.
benchmarks/baseline_benchmark.py starts it beside the package's node on the same frames.

    python baseline_afternoon_node.py MODEL.tflite CATEGORY_TOPIC CONFIDENCE_TOPIC... \
        --ros-args -r image:=/camera/image -r __ns:=/ns
"""

import sys
import threading

import cv2
import mediapipe as mp
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.vision import image_segmenter
from mediapipe.tasks.python.vision.core.vision_task_running_mode import (
    VisionTaskRunningMode)
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image


class BaselineSegmenterNode(Node):
    """Subscribe to images, segment them asynchronously, publish the masks."""

    def __init__(self, model: str, category_topic: str, confidence_topics: list):
        super().__init__('baseline_segmenter')
        reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
        self.category_publisher = self.create_publisher(Image, category_topic, reliable)
        self.confidence_publishers = [self.create_publisher(Image, topic, reliable)
                                      for topic in confidence_topics]
        self.headers = {}
        self.lock = threading.Lock()
        self.last_timestamp_ms = -1
        self.segmenter = image_segmenter.ImageSegmenter.create_from_options(
            image_segmenter.ImageSegmenterOptions(
                base_options=BaseOptions(model_asset_path=model),
                running_mode=VisionTaskRunningMode.LIVE_STREAM,
                output_category_mask=True, output_confidence_masks=True,
                result_callback=self.on_result))
        self.subscription = self.create_subscription(Image, 'image', self.on_image,
                                                     qos_profile_sensor_data)

    def on_image(self, msg: Image) -> None:
        """Hand the frame to MediaPipe, keeping its header for the result."""
        frame = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
        if msg.encoding == 'bgr8':
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        timestamp_ms = msg.header.stamp.sec * 1000 + msg.header.stamp.nanosec // 1000000
        with self.lock:
            if timestamp_ms <= self.last_timestamp_ms:
                return  # MediaPipe wants increasing timestamps
            self.last_timestamp_ms = timestamp_ms
            self.headers[timestamp_ms] = msg.header
        self.segmenter.segment_async(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame),
                                     timestamp_ms)

    def on_result(self, result, image, timestamp_ms: int) -> None:
        """Publish the masks with the input's header (frames MediaPipe dropped are forgotten)."""
        with self.lock:
            header = self.headers.pop(timestamp_ms, None)
            for stale in [stamp for stamp in self.headers if stamp < timestamp_ms]:
                del self.headers[stale]
        if header is None:
            return
        self.category_publisher.publish(
            self.message(header, result.category_mask.numpy_view(), 'mono8'))
        for publisher, mask in zip(self.confidence_publishers, result.confidence_masks):
            publisher.publish(self.message(header, mask.numpy_view(), '32FC1'))

    @staticmethod
    def message(header, pixels: np.ndarray, encoding: str) -> Image:
        """Build an Image message from a mask."""
        height, width = pixels.shape[:2]
        return Image(header=header, height=height, width=width, encoding=encoding,
                     step=width * pixels.itemsize, data=pixels.tobytes())


def main() -> None:
    """Run the node until interrupted."""
    args = rclpy.utilities.remove_ros_args(sys.argv)
    rclpy.init()
    node = BaselineSegmenterNode(args[1], args[2], args[3:])
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.segmenter.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()

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
make_sample_bag: turn a video file into a rosbag2 of camera images, for demos and tests.

``make_sample_bag VIDEO OUTPUT [--encoding E] [--rate HZ] [--frame-id ID]
[--storage mcap|sqlite3] [--compressed] [--frames N]`` writes one sensor_msgs/Image (or,
with ``--compressed``, a jpeg CompressedImage) per video frame, stamped ``--rate`` apart,
as a camera driver would publish them; the receive time of each message is its stamp.
"""

import argparse
import array
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

from builtin_interfaces.msg import Time
import cv2
import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from tqdm import tqdm

from .bag_io import BagError, BagWriter, COMPRESSED_TYPE, IMAGE_TYPE, qos_to_bag, STORAGES
from .cli import run
from ..node.output_messages import image_fields

NAME = 'make_sample_bag'
# From the BGR frames OpenCV decodes to what a camera sending each encoding puts in its rows.
ENCODINGS = {
    'bgr8': None,
    'rgb8': cv2.COLOR_BGR2RGB,
    'bgra8': cv2.COLOR_BGR2BGRA,
    'rgba8': cv2.COLOR_BGR2RGBA,
    'mono8': cv2.COLOR_BGR2GRAY,
}
COMPRESSED_FORMATS = {'jpeg': '.jpg', 'png': '.png'}


def frame_message(bgr: np.ndarray, encoding: str, compressed: Optional[str]) -> object:
    """Return the Image (or CompressedImage) a camera would send for this BGR frame."""
    if compressed:
        data = cv2.imencode(COMPRESSED_FORMATS[compressed], bgr)[1]
        return CompressedImage(format=compressed, data=array.array('B', data.tobytes()))
    conversion = ENCODINGS[encoding]
    pixels = bgr if conversion is None else cv2.cvtColor(bgr, conversion)
    return Image(**image_fields(pixels, encoding))


def make_sample_bag(video: Path, output: Path, encoding: str = 'bgr8',
                    rate: Optional[float] = None, frame_id: str = 'camera',
                    storage: str = 'mcap', compressed: Optional[str] = None,
                    frames: Optional[int] = None, topic: Optional[str] = None,
                    start_time: Optional[float] = None, force: bool = False) -> int:
    """Write the bag; return the number of frames. The stamps start at ``start_time``."""
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if not capture.isOpened() or total <= 0:
        raise BagError('Cannot read video %s (not found, or not a video OpenCV can decode).'
                       % video)
    rate = rate or capture.get(cv2.CAP_PROP_FPS) or 30.0
    count = min(total, frames) if frames else total
    topic = topic or ('/camera/image_raw/compressed' if compressed else '/camera/image_raw')
    start_ns = int(round((time.time() if start_time is None else start_time) * 1e9))
    written = 0
    with BagWriter(output, storage, force) as writer:
        writer.add_topic(topic, COMPRESSED_TYPE if compressed else IMAGE_TYPE,
                         [qos_to_bag(qos_profile_sensor_data)])
        for index in tqdm(range(count), unit='frame', desc=NAME, dynamic_ncols=True):
            ok, bgr = capture.read()
            if not ok:
                break
            msg = frame_message(bgr, encoding, compressed)
            stamp_ns = start_ns + int(round(index * 1e9 / rate))
            msg.header.frame_id = frame_id
            msg.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
            writer.write(topic, stamp_ns, msg)
            written += 1
    capture.release()
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and write the bag."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.strip().splitlines()[0])
    parser.add_argument('video', type=Path)
    parser.add_argument('output', type=Path, help='new rosbag2 directory')
    parser.add_argument('--encoding', choices=sorted(ENCODINGS), default='bgr8')
    parser.add_argument('--rate', type=float, help="frames per second (default: the video's)")
    parser.add_argument('--frame-id', default='camera')
    parser.add_argument('--storage', choices=sorted(STORAGES), default='mcap')
    parser.add_argument('--compressed', nargs='?', const='jpeg', choices=sorted(
        COMPRESSED_FORMATS), help='write sensor_msgs/CompressedImage (jpeg, or png)')
    parser.add_argument('--frames', type=int, help='at most this many frames')
    parser.add_argument('--topic', help='default /camera/image_raw (/compressed)')
    parser.add_argument('--start-time', type=float,
                        help='stamp of the first frame in seconds (default: now)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUTPUT')
    args = parser.parse_args(argv)

    def body() -> int:
        count = make_sample_bag(args.video, args.output, args.encoding, args.rate,
                                args.frame_id, args.storage, args.compressed, args.frames,
                                args.topic, args.start_time, args.force)
        print('%s: wrote %d frames to %s' % (NAME, count, args.output))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())

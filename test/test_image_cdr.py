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

"""The sensor_msgs/Image CDR codec against rclpy's own serializer, byte for byte."""

import struct
from typing import List

from builtin_interfaces.msg import Time
from image_segmenter_ros.node.image_cdr import (CdrError, decode_image, encode_image,
                                                image_from_cdr)
from image_segmenter_ros.node.output_messages import image_fields, serialized_image
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

FRAME_IDS = ['', 'a', 'ab', 'cam', 'cam0', 'camera_optical_frame', 'caméra']
PIXELS = [
    (np.arange(6, dtype=np.uint8).reshape(2, 3), 'mono8'),
    (np.arange(35, dtype=np.uint8).reshape(5, 7), 'mono8'),
    (np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3), 'bgr8'),
    (np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4), 'rgba8'),
    (np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), '32FC1'),
    (np.linspace(0, 1, 12, dtype='>f4').reshape(3, 4), '32FC1'),
    (np.zeros((0, 4), np.uint8), 'mono8'),
]


def rclpy_message(header: Header, pixels: np.ndarray, encoding: str) -> Image:
    """Build the message as the node does (image_fields), for rclpy to serialize."""
    return Image(header=header, **image_fields(pixels, encoding))


def padding_offsets(frame_id: str, encoding: str) -> List[int]:
    """Offsets of the alignment bytes, which rclpy leaves uninitialised."""
    after_frame_id = 4 + 12 + len(frame_id.encode()) + 1
    after_flag = (after_frame_id + -(after_frame_id - 4) % 4) + 12 + len(encoding) + 1 + 1
    return ([*range(after_frame_id, after_frame_id + -(after_frame_id - 4) % 4)] +
            [*range(after_flag, after_flag + -(after_flag - 4) % 4)])


@pytest.mark.parametrize('frame_id', FRAME_IDS)
@pytest.mark.parametrize('pixels,encoding', PIXELS)
def test_encoded_bytes_equal_rclpy_serialization(frame_id, pixels, encoding):
    header = Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id=frame_id)
    expected = serialize_message(rclpy_message(header, pixels, encoding))
    encoded = serialized_image(header, pixels, encoding)  # what the node publishes
    assert len(encoded) == len(expected)
    padding = padding_offsets(frame_id, encoding)
    assert all(encoded[i] == 0 for i in padding)
    same = [i for i in range(len(encoded)) if i not in padding]
    assert bytes(encoded[i] for i in same) == bytes(expected[i] for i in same)
    assert deserialize_message(encoded, Image) == rclpy_message(header, pixels, encoding)


@pytest.mark.parametrize('frame_id', FRAME_IDS)
@pytest.mark.parametrize('pixels,encoding', PIXELS)
def test_decoded_fields_equal_rclpy_and_data_is_a_view(frame_id, pixels, encoding):
    header = Header(stamp=Time(sec=-5, nanosec=999_999_999), frame_id=frame_id)
    message = rclpy_message(header, pixels, encoding)
    raw = serialize_message(message)
    view = decode_image(raw)
    assert view.header == message.header
    assert (view.height, view.width, view.encoding, view.is_bigendian, view.step) == (
        message.height, message.width, message.encoding, message.is_bigendian, message.step)
    assert bytes(view.data) == bytes(message.data)
    assert view.data.obj is raw  # no copy of the pixels


def test_the_encoder_takes_a_view_of_contiguous_pixels():
    mask = np.arange(24, dtype=np.float32).reshape(4, 6)
    _, data = encode_image(Header(), mask, '32FC1')
    assert np.shares_memory(np.frombuffer(data, np.uint8), mask)
    prefix, data = encode_image(Header(), mask[:, ::2], '32FC1')  # strided: copied once
    assert deserialize_message(prefix + bytes(data), Image) == rclpy_message(
        Header(), mask[:, ::2], '32FC1')


def test_bytes_it_does_not_read_are_refused_for_rclpy_to_judge():
    raw = serialize_message(rclpy_message(Header(frame_id='cam'), np.zeros((2, 2), np.uint8),
                                          'mono8'))
    bad_flag = bytearray(raw)
    bad_flag[4 + 12 + 4 + 12 + 6] = 2  # is_bigendian is a bool
    for bad in [raw[:10], raw[:-1], b'\x00\x00' + raw[2:], b'\x00\x01\x00\x00not a message',
                bytes(bad_flag)]:
        with pytest.raises(CdrError):
            decode_image(bad)
    decode_image(raw + b'\x00\x00')  # trailing bytes are ignored, as by rclpy


def test_an_image_the_view_cannot_read_comes_from_rclpy():
    """The node takes its input as bytes: big-endian CDR (encapsulation 0) still decodes."""
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    header = Header(stamp=Time(sec=7, nanosec=9), frame_id='cam')
    big_endian = b''.join((b'\x00\x00\x00\x00', struct.pack('>iII', 7, 9, 4), b'cam\x00',
                           struct.pack('>III', 2, 3, 6), b'mono8\x00', b'\x00', b'\x00',
                           struct.pack('>II', 3, 6), pixels.tobytes()))
    with pytest.raises(CdrError):
        decode_image(big_endian)
    assert image_from_cdr(big_endian) == rclpy_message(header, pixels, 'mono8')
    little_endian = serialize_message(rclpy_message(header, pixels, 'mono8'))
    assert image_from_cdr(little_endian).data.obj is little_endian

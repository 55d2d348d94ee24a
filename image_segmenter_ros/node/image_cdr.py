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
sensor_msgs/Image in little-endian CDR, a bag's or a topic's bytes, without copying the pixels.

rclpy's serializer copies a frame into a message and again into its CDR bytes, and its
deserializer copies it back out: for megabyte images that costs more than segmenting them.
Here the pixels stay where they are: ``decode_image`` returns a view of the stored bytes, and
``encode_image`` returns the few bytes before the pixels plus the pixel buffer itself, which
a writer stores one after the other. The layout is rclpy's (Fast CDR, XCDR1), checked against
it in the tests; only alignment padding, which rclpy leaves uninitialised, is written as zeros.
"""

from dataclasses import dataclass
import math
import struct
import sys
from typing import Tuple, Union

from builtin_interfaces.msg import Time
import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

CDR_LE = b'\x00\x01\x00\x00'  # encapsulation: plain CDR, little-endian, no options
_UINT32 = struct.Struct('<I')
_STAMP_AND_LENGTH = struct.Struct('<iII')
_SIZE_AND_LENGTH = struct.Struct('<III')
_STEP_AND_LENGTH = struct.Struct('<II')
_ALIGN = 4  # every field after a string is a 4-byte integer


class CdrError(ValueError):
    """Bytes this codec does not read; rclpy's deserializer is the judge of those."""


@dataclass
class ImageView:
    """The fields of a sensor_msgs/Image, with ``data`` a view of the CDR bytes."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: memoryview


def _padding(offset: int) -> bytes:
    return b'\x00' * (-offset % _ALIGN)


def _string(text: str) -> bytes:
    return text.encode() + b'\x00'


def encode_image(header: Header, pixels: np.ndarray, encoding: str) -> Tuple[bytes, memoryview]:
    """
    Return the CDR of an Image of ``pixels`` as (the bytes before the data, the data).

    ``pixels`` is a mono8, rgb8/bgr8/..., or 32FC1 array; the data is a view of it when it
    is C-contiguous (rows are not padded, as the node publishes them).
    """
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    big_endian = pixels.dtype.byteorder == '>' or (
        pixels.dtype.byteorder == '=' and sys.byteorder == 'big')
    frame_id = _string(header.frame_id)
    row_bytes = pixels.itemsize * math.prod(pixels.shape[1:])
    encoded = _string(encoding)
    # Offsets count from the end of the encapsulation header, as CDR alignment does.
    prefix = b''.join((
        CDR_LE,
        _STAMP_AND_LENGTH.pack(header.stamp.sec, header.stamp.nanosec, len(frame_id)),
        frame_id, _padding(len(frame_id)),
        _SIZE_AND_LENGTH.pack(height, width, len(encoded)),
        encoded, b'\x01' if big_endian else b'\x00', _padding(len(encoded) + 1),
        _STEP_AND_LENGTH.pack(row_bytes, pixels.nbytes)))
    return prefix, memoryview(pixels.reshape(-1).view(np.uint8))


def _read_string(raw: memoryview, offset: int) -> Tuple[str, int]:
    """Return a string and the offset after it (unaligned)."""
    (length,) = _UINT32.unpack_from(raw, offset)
    end = offset + 4 + length
    if length == 0 or end > len(raw) or raw[end - 1] != 0:
        raise CdrError('not a terminated string at offset %d' % offset)
    try:
        return bytes(raw[offset + 4:end - 1]).decode(), end
    except UnicodeDecodeError as error:
        raise CdrError(str(error)) from None


def decode_image(raw: bytes) -> ImageView:
    """Read an Image's fields from little-endian CDR; ``data`` is a view of ``raw``."""
    view = memoryview(raw).cast('B')
    try:
        if view[:2] != CDR_LE[:2]:
            raise CdrError('not little-endian CDR')
        body = view[len(CDR_LE):]  # alignment counts from here
        sec, nanosec, _ = _STAMP_AND_LENGTH.unpack_from(body, 0)
        frame_id, offset = _read_string(body, 8)
        offset += -offset % _ALIGN
        height, width, _ = _SIZE_AND_LENGTH.unpack_from(body, offset)
        encoding, offset = _read_string(body, offset + 8)
        big_endian = body[offset]
        offset += 1 + (-(offset + 1) % _ALIGN)
        step, size = _STEP_AND_LENGTH.unpack_from(body, offset)
    except (struct.error, IndexError) as error:
        raise CdrError('truncated: %s' % error) from None
    start = offset + _STEP_AND_LENGTH.size
    if start + size > len(body) or big_endian > 1:
        raise CdrError('data or is_bigendian out of range')
    header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)
    return ImageView(header, height, width, encoding, bool(big_endian), step,
                     body[start:start + size])


def image_from_cdr(raw: bytes) -> Union[ImageView, Image]:
    """Return the Image in ``raw``: a view of it, or rclpy's message where the view cannot read."""
    try:
        return decode_image(raw)
    except CdrError:
        return deserialize_message(raw, Image)

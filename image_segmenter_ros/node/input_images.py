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
sensor_msgs image payloads to and from numpy, without cv_bridge and without rclpy.

Messages are duck-typed (anything with the fields of sensor_msgs/Image or CompressedImage),
so the conversions are tested without a ROS graph. Raw images are read through one strided
view of the message buffer (row padding is skipped, never copied) and converted once.
"""

from typing import Any, Optional, Tuple

import cv2
import numpy as np

# 8-bit encodings: bytes per pixel and the cv2 conversion to the engine's layout (None: as is;
# _REVERSED: a view with the channel order reversed, which the engine takes without a copy).
_REVERSED = 'reversed'
_EIGHT_BIT = {
    'rgb8': (3, None),
    'bgr8': (3, _REVERSED),
    'rgba8': (4, None),
    'bgra8': (4, cv2.COLOR_BGRA2RGBA),
    'mono8': (1, None),
    'yuv422': (2, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, cv2.COLOR_YUV2RGB_YUY2),
    # OpenCV names a Bayer pattern by its second row's first two pixels (cv_bridge's mapping).
    'bayer_rggb8': (1, cv2.COLOR_BayerBG2RGB),
    'bayer_bggr8': (1, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': (1, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': (1, cv2.COLOR_BayerGB2RGB),
}
# OpenCV type names that some drivers publish; cv_bridge reads them as these encodings.
_ALIASES = {'8UC1': 'mono8', '8UC3': 'bgr8', '8UC4': 'bgra8'}
SUPPORTED_ENCODINGS = tuple(_EIGHT_BIT) + ('mono16',) + tuple(_ALIASES)
COMPRESSED_FORMATS = ('jpeg', 'png')

# cv_bridge's 16 to 8 bit scaling (255 / 65535, rounded) as a table: one lookup per pixel.
_MONO16_TO_8 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)

# The last chunk of every png: length 0, type IEND, and its (constant) CRC.
_PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'


class InvalidImageError(ValueError):
    """An image message that cannot be decoded: bad sizes, short data or unknown encoding."""


def _buffer(data: Any, what: str) -> np.ndarray:
    try:
        return np.frombuffer(memoryview(data).cast('B'), np.uint8)
    except (TypeError, ValueError):
        raise InvalidImageError('%s data must be bytes-like, got %s.'
                                % (what, type(data).__name__)) from None


def _checked_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidImageError('Image %s must be a non-negative integer, got %r.'
                                % (name, value))
    return int(value)


def _check_pixel_count(width: int, height: int, max_pixels: Optional[int]) -> None:
    """Refuse oversized images from their declared size, before any decode or allocation."""
    if max_pixels is not None and width * height > max_pixels:
        raise InvalidImageError('Image of %dx%d pixels is larger than max_input_pixels (%d).'
                                % (width, height, max_pixels))


def image_to_array(msg: Any, max_pixels: Optional[int] = None) -> np.ndarray:
    """
    Decode a sensor_msgs/Image into what the engine takes: RGB, RGBA or gray uint8.

    rgb8/mono8 come back as a view of the message buffer, bgr8 as a view of it in reversed
    channel order (no copy; NumPy and OpenCV read it as RGB); other encodings are converted once.
    mono16 is scaled to 8 bits like cv_bridge. Rows may be padded by any number of bytes, but
    16-bit rows must start on a sample. Raises InvalidImageError on any bad message, including
    one of more than ``max_pixels`` pixels.
    """
    height = _checked_size(msg.height, 'height')
    width = _checked_size(msg.width, 'width')
    step = _checked_size(msg.step, 'step')
    encoding = _ALIASES.get(msg.encoding, msg.encoding)
    if encoding not in SUPPORTED_ENCODINGS:
        raise InvalidImageError('Unsupported image encoding %r; supported: %s.'
                                % (encoding, ', '.join(SUPPORTED_ENCODINGS)))
    if height == 0 or width == 0:
        raise InvalidImageError('Image is empty (%dx%d).' % (width, height))
    _check_pixel_count(width, height, max_pixels)
    pixel_bytes = 2 if encoding == 'mono16' else _EIGHT_BIT[encoding][0]
    if step < width * pixel_bytes:
        raise InvalidImageError('Image step %d is shorter than a %s row of width %d (%d bytes).'
                                % (step, encoding, width, width * pixel_bytes))
    if encoding == 'mono16' and step % 2:
        raise InvalidImageError('Image step %d is odd: mono16 rows must start on a 2-byte '
                                'sample.' % step)
    if pixel_bytes == 2 and encoding.startswith('yuv422') and width % 2:
        raise InvalidImageError('A %s image needs an even width, got %d.' % (encoding, width))
    data = _buffer(msg.data, 'Image')
    if data.size < height * step:
        raise InvalidImageError('Image data has %d bytes, %d rows of step %d need %d.'
                                % (data.size, height, step, height * step))
    if encoding == 'mono16':
        dtype = np.dtype('>u2' if msg.is_bigendian else '<u2')
        view = np.ndarray((height, width), dtype, buffer=data, strides=(step, 2))
        return _MONO16_TO_8[view]
    channels, conversion = _EIGHT_BIT[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    strides = (step, 1) if channels == 1 else (step, channels, 1)
    view = np.ndarray(shape, np.uint8, buffer=data, strides=strides)
    if conversion is None:
        return view
    if conversion == _REVERSED:
        return view[:, :, ::-1]
    try:
        return cv2.cvtColor(view, conversion)
    except cv2.error as error:
        raise InvalidImageError('Cannot convert a %dx%d %s image: %s'
                                % (width, height, encoding, error.err)) from None


def _ends_with(data: np.ndarray, end_marker: bytes, slack: int = 0) -> bool:
    """
    Whether the stream ends with ``end_marker``, give or take ``slack`` bytes and padding.

    Some camera drivers pad compressed frames with zero (or 0xFF) bytes to a fixed size, and
    OpenCV decodes them. A truncated stream must not pass: OpenCV would make up what is
    missing.
    """
    end = len(data)
    while end > 0:  # the end of the content: the last byte that is not padding
        chunk = data[max(0, end - 4096):end]
        content = np.flatnonzero((chunk != 0) & (chunk != 0xFF))
        if content.size:
            end = end - len(chunk) + int(content[-1]) + 1
            break
        end -= len(chunk)
    # A marker ending in 0xFF or 0x00 would have been cut short above; ours end otherwise.
    tail = data[max(0, end - len(end_marker) - slack):end].tobytes()
    return end_marker in tail


def _png_size(data: np.ndarray) -> Tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG signature must be followed by."""
    if data.size < 24 or data[12:16].tobytes() != b'IHDR':
        raise InvalidImageError('Compressed image is a truncated png (no IHDR chunk).')
    if not _ends_with(data, _PNG_END):
        raise InvalidImageError('Compressed image is a truncated png (it does not end with an '
                                'IEND chunk).')
    width, height = np.frombuffer(data[16:24].tobytes(), '>u4')
    return int(width), int(height)


def _jpeg_size(data: np.ndarray) -> Tuple[int, int]:
    """Width and height from the first SOF segment, walking the marker segments before it."""
    # EOI cannot occur inside entropy-coded data (0xFF is stuffed there), only at the end.
    if not _ends_with(data, b'\xff\xd9', slack=32):  # a CR LF after it, as MJPEG streams have
        raise InvalidImageError('Compressed image is a truncated jpeg (no end-of-image marker).')
    raw = data.data  # a memoryview: no copy of the scan data
    offset = 2
    while offset + 4 <= len(raw):
        if raw[offset] != 0xFF:
            break
        marker = raw[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = int.from_bytes(raw[offset + 2:offset + 4], 'big')
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) give the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if length < 7 or offset + 9 > len(raw):
                break
            height = int.from_bytes(raw[offset + 5:offset + 7], 'big')
            return int.from_bytes(raw[offset + 7:offset + 9], 'big'), height
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        offset += 2 + length
    raise InvalidImageError('Compressed image is a corrupt jpeg (no valid frame header).')


def compressed_size(data: np.ndarray) -> Tuple[int, int]:
    """
    Return (width, height) of a jpeg or png stream from its header, without decoding it.

    The format is taken from the content, as decoders do, not from the message's ``format``
    string (image_transport writes several spellings). Truncated streams are refused here too,
    so the decoder never sees them.
    """
    if data[:8].tobytes() == b'\x89PNG\r\n\x1a\n':
        return _png_size(data)
    if data[:3].tobytes() == b'\xff\xd8\xff':
        return _jpeg_size(data)
    raise InvalidImageError('Compressed image is neither a jpeg nor a png stream (it starts '
                            'with %s).' % data[:8].tobytes().hex())


def compressed_to_array(msg: Any, max_pixels: Optional[int] = None) -> np.ndarray:
    """
    Decode a jpeg or png sensor_msgs/CompressedImage to RGB, RGBA or gray uint8.

    RGB is a view of the decoder's BGR in reversed channel order, as for bgr8 images.

    The header's size is checked against ``max_pixels`` before the decoder allocates anything.
    """
    data = _buffer(msg.data, 'Compressed image')
    if data.size == 0:
        raise InvalidImageError('Compressed image (format %r) has no data.' % msg.format)
    width, height = compressed_size(data)
    if width == 0 or height == 0:
        raise InvalidImageError('Compressed image is empty (%dx%d).' % (width, height))
    _check_pixel_count(width, height, max_pixels)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise InvalidImageError('Cannot decode compressed image of format %r: not a valid %s '
                                'stream.' % (msg.format, ' or '.join(COMPRESSED_FORMATS)))
    if decoded.dtype == np.uint16:
        decoded = _MONO16_TO_8[decoded]
    if decoded.ndim == 2:
        return decoded
    if decoded.shape[2] == 3:
        return decoded[:, :, ::-1]
    return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)


def message_to_array(msg: Any, max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode an Image or a CompressedImage (anything with a ``format``) for the engine."""
    convert = compressed_to_array if hasattr(msg, 'format') else image_to_array
    return convert(msg, max_pixels)

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

"""Image message payloads <-> numpy on real video frames, against OpenCV references."""

from types import SimpleNamespace

import cv2
from hypothesis import given, settings, strategies as st
from image_samples import bayer_mosaic, PADDING, raw_message, uyvy_pixels
from image_segmenter_ros.node import input_images as ic
from image_segmenter_ros.node.output_messages import image_fields
from image_segmenter_ros.node.overlay import PALETTE
from image_segmenter_ros.node.overlay import render_overlay
import numpy as np
import pytest


@pytest.fixture(scope='module')
def frame(megamind_frames) -> np.ndarray:
    """Return a real RGB frame of even size, as YUV and Bayer layouts need: 720x528."""
    return megamind_frames[0]


@pytest.mark.parametrize('padding', [0, PADDING])
def test_colour_encodings_match_opencv(frame, padding):
    alpha = np.arange(frame.shape[0] * frame.shape[1], dtype=np.uint8).reshape(frame.shape[:2])
    rgba = np.dstack([frame, alpha])
    cases = {
        'rgb8': (frame, frame),
        'bgr8': (cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), frame),
        'rgba8': (rgba, rgba),
        'bgra8': (cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), rgba),
    }
    for encoding, (pixels, expected) in cases.items():
        decoded = ic.image_to_array(raw_message(pixels, encoding, padding))
        np.testing.assert_array_equal(decoded, expected, err_msg=encoding)


@pytest.mark.parametrize('padding', [0, PADDING])
def test_opencv_type_names_are_read_as_cv_bridge_reads_them(frame, padding):
    """Some drivers publish 8UC1, 8UC3 and 8UC4: mono8, bgr8 and bgra8 to cv_bridge."""
    alpha = np.full(frame.shape[:2], 200, np.uint8)
    cases = {'8UC1': (frame[:, :, 1].copy(), frame[:, :, 1]),
             '8UC3': (cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), frame),
             '8UC4': (cv2.cvtColor(np.dstack([frame, alpha]), cv2.COLOR_RGBA2BGRA),
                      np.dstack([frame, alpha]))}
    for encoding, (pixels, expected) in cases.items():
        decoded = ic.image_to_array(raw_message(pixels, encoding, padding))
        np.testing.assert_array_equal(decoded, expected, err_msg=encoding)


@pytest.mark.parametrize('padding', [0, PADDING])
def test_rgb8_and_mono8_are_views_of_the_message_buffer(frame, padding):
    for pixels, encoding in [(frame, 'rgb8'), (frame[:, :, 1].copy(), 'mono8')]:
        msg = raw_message(pixels, encoding, padding)
        msg.data = bytearray(msg.data)
        decoded = ic.image_to_array(msg)
        np.testing.assert_array_equal(decoded, pixels)
        assert np.shares_memory(decoded, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize('is_bigendian', [False, True])
@pytest.mark.parametrize('padding', [0, PADDING + 1])
def test_mono16_is_scaled_like_cv_bridge(frame, is_bigendian, padding):
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    gray += np.random.default_rng(0).integers(0, 257, gray.shape).astype(np.uint16) % 257
    stored = gray.astype('>u2' if is_bigendian else '<u2')
    decoded = ic.image_to_array(raw_message(stored, 'mono16', padding, is_bigendian))
    expected = np.round(gray.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.dtype == np.uint8 and decoded.shape == gray.shape


@pytest.mark.parametrize('encoding, layout', [('yuv422', 'UYVY'), ('yuv422_yuy2', 'YUY2')])
@pytest.mark.parametrize('padding', [0, PADDING + 1])
def test_yuv422_byte_orders(frame, encoding, layout, padding):
    uyvy = uyvy_pixels(frame)
    # U Y0 V Y1 -> Y0 U Y1 V
    yuyv = uyvy.reshape(frame.shape[0], -1, 4)[:, :, [1, 0, 3, 2]].reshape(uyvy.shape)
    packed = uyvy if layout == 'UYVY' else yuyv
    decoded = ic.image_to_array(raw_message(packed, encoding, padding))
    reference = cv2.cvtColor(packed, getattr(cv2, 'COLOR_YUV2RGB_' + layout))
    np.testing.assert_array_equal(decoded, reference)
    # Chroma is subsampled: close to the original frame, not equal.
    assert np.abs(decoded.astype(int) - frame).mean() < 6


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('padding', [0, PADDING])
def test_bayer_patterns_demosaic_to_the_original_colours(frame, pattern, padding):
    mosaic = bayer_mosaic(frame, pattern)
    decoded = ic.image_to_array(raw_message(mosaic, 'bayer_%s8' % pattern, padding))
    assert decoded.shape == frame.shape
    # The right pattern gives back the frame up to interpolation; a wrong one swaps colours.
    errors = {other: np.abs(ic.image_to_array(raw_message(mosaic, 'bayer_%s8' % other))
                            .astype(int) - frame).mean()
              for other in ['rggb', 'bggr', 'gbrg', 'grbg']}
    assert min(errors, key=errors.get) == pattern, errors
    assert np.abs(decoded.astype(int) - frame).mean() == errors[pattern]


def test_compressed_png_and_jpeg(frame):
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    png = cv2.imencode('.png', bgr)[1]
    np.testing.assert_array_equal(
        ic.compressed_to_array(SimpleNamespace(format='png', data=png.tobytes())), frame)
    jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    decoded = ic.compressed_to_array(SimpleNamespace(format='jpeg', data=jpeg.tobytes()))
    np.testing.assert_array_equal(
        decoded, cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    decoded = ic.compressed_to_array(SimpleNamespace(
        format='mono8; png compressed', data=cv2.imencode('.png', gray)[1].tobytes()))
    np.testing.assert_array_equal(decoded, gray)
    gray16 = gray.astype(np.uint16) * 257
    decoded = ic.compressed_to_array(SimpleNamespace(
        format='mono16; png compressed', data=cv2.imencode('.png', gray16)[1].tobytes()))
    np.testing.assert_array_equal(decoded, gray)


@pytest.mark.parametrize('encoding, height, width, step, data, reason', [
    ('rgb8', 4, 4, 12, bytes(47), 'data has 47 bytes'),
    ('rgb8', 4, 4, 11, bytes(64), 'step 11'),
    ('mono8', 0, 4, 4, b'', 'empty'),
    ('rgb8', 4, 0, 0, b'', 'empty'),
    ('32FC1', 1, 1, 4, bytes(4), 'supported: rgb8'),
    ('yuv422', 2, 3, 6, bytes(12), 'even width'),
    ('mono8', 2, 2, 2, [0, 1, 2, 3], 'bytes-like'),
    ('mono8', -1, 2, 2, bytes(4), 'height'),
])
def test_invalid_images_are_rejected_with_a_reason(encoding, height, width, step, data, reason):
    msg = SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data,
                          is_bigendian=False)
    with pytest.raises(ic.InvalidImageError, match=reason):
        ic.image_to_array(msg)


@pytest.mark.parametrize('data', [b'', b'not an image', bytes(100)])
def test_invalid_compressed_images_are_rejected(data):
    with pytest.raises(ic.InvalidImageError, match='no data|neither a jpeg nor a png'):
        ic.compressed_to_array(SimpleNamespace(format='jpeg', data=data))


# Bytes of one pixel in a row (1 for the rest), written out here as an independent oracle.
PIXEL_BYTES = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono16': 2, 'yuv422': 2,
               'yuv422_yuy2': 2, '8UC3': 3, '8UC4': 4}


@settings(max_examples=400, deadline=None)
@given(encoding=st.sampled_from(ic.SUPPORTED_ENCODINGS + ('', 'rgb16', 'BGR8')) |
       st.text(max_size=8), height=st.integers(0, 9), width=st.integers(0, 9),
       step=st.integers(0, 40), length=st.integers(0, 400), is_bigendian=st.booleans(),
       max_pixels=st.none() | st.integers(1, 80))
def test_any_message_decodes_or_raises_invalid_image_error(encoding, height, width, step,
                                                           length, is_bigendian, max_pixels):
    """
    Decode any fields, or raise InvalidImageError only, reading no byte outside the rows.

    The data is a window of a larger buffer, so a read past ``length`` would fail in numpy;
    a decode must not change when the row padding and the bytes after the last row change.
    """
    rng = np.random.default_rng(length)
    backing = bytearray(rng.integers(0, 256, length + 64, dtype=np.uint8).tobytes())
    msg = SimpleNamespace(encoding=encoding, height=height, width=width, step=step,
                          is_bigendian=is_bigendian, data=memoryview(backing)[:length])
    try:
        decoded = ic.image_to_array(msg, max_pixels).copy()
    except ic.InvalidImageError:
        return
    assert decoded.dtype == np.uint8 and decoded.shape[:2] == (height, width)
    assert decoded.ndim == 2 or decoded.shape[2] in (3, 4)
    assert max_pixels is None or height * width <= max_pixels
    row = width * PIXEL_BYTES.get(encoding, 1)
    for offset in range(length):
        if offset % step >= row or offset >= height * step:
            backing[offset] ^= 0xFF
    np.testing.assert_array_equal(ic.image_to_array(msg, max_pixels), decoded)


@settings(max_examples=100, deadline=None)
@given(width=st.integers(3, 2 ** 32 - 1), height=st.integers(3, 2 ** 32 - 1))
def test_huge_declared_sizes_are_refused_before_reading_the_data(width, height):
    msg = SimpleNamespace(encoding='rgb8', height=height, width=width, step=3 * width,
                          is_bigendian=False, data=bytes(16))
    too_big = width * height > 4096 * 4096
    with pytest.raises(ic.InvalidImageError, match='max_input_pixels' if too_big else 'data has'):
        ic.image_to_array(msg, 4096 * 4096)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_compressed_payload_decodes_or_raises_invalid_image_error(data):
    try:
        decoded = ic.compressed_to_array(SimpleNamespace(format='png', data=data))
    except ic.InvalidImageError:
        return
    assert decoded.dtype == np.uint8


@pytest.fixture(scope='module')
def encoded(frame):
    """Return the frame (shrunk, so a hundred decodes stay quick) as a jpeg and a png."""
    small = cv2.cvtColor(cv2.resize(frame, (96, 72)), cv2.COLOR_RGB2BGR)
    return {ext: cv2.imencode(ext, small)[1].tobytes() for ext in ('.jpg', '.png')}


@settings(max_examples=150, deadline=None)
@given(extension=st.sampled_from(['.jpg', '.png']), cut=st.floats(0.0, 1.0, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
                      max_size=4))
def test_truncated_or_corrupted_real_streams_raise_only_invalid_image_error(
        encoded, extension, cut, flips):
    stream = encoded[extension]
    with pytest.raises(ic.InvalidImageError, match='truncated|neither|no data'):
        ic.compressed_to_array(SimpleNamespace(format=extension,
                                               data=stream[:int(cut * len(stream))]))
    data = bytearray(stream)
    for position, mask in flips:
        data[int(position * len(data))] ^= mask
    try:
        decoded = ic.compressed_to_array(SimpleNamespace(format=extension, data=bytes(data)))
    except ic.InvalidImageError:
        return
    assert decoded.dtype == np.uint8 and decoded.ndim in (2, 3)


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
@pytest.mark.parametrize('padding', [b'\x00' * 64, b'\xff' * 7, b'\x00' * 70000])
def test_streams_padded_after_their_end_marker_decode_as_without_padding(
        encoded, extension, padding):
    stream = encoded[extension]
    expected = ic.compressed_to_array(SimpleNamespace(format=extension, data=stream))
    padded = ic.compressed_to_array(SimpleNamespace(format=extension, data=stream + padding))
    np.testing.assert_array_equal(padded, expected)
    with pytest.raises(ic.InvalidImageError, match='truncated'):
        ic.compressed_to_array(SimpleNamespace(format=extension,
                                               data=stream[:-20] + padding))


def test_a_jpeg_followed_by_a_line_break_decodes(encoded):
    # MJPEG over HTTP leaves CR LF after each frame.
    expected = ic.compressed_to_array(SimpleNamespace(format='jpeg', data=encoded['.jpg']))
    np.testing.assert_array_equal(ic.compressed_to_array(SimpleNamespace(
        format='jpeg', data=encoded['.jpg'] + b'\r\n')), expected)


@pytest.mark.parametrize('array, encoding, dtype', [
    (np.arange(12, dtype=np.uint8).reshape(3, 4), 'mono8', np.uint8),
    (np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), '32FC1', np.float32),
    (np.arange(36, dtype=np.uint8).reshape(3, 4, 3), 'rgb8', np.uint8),
    (np.arange(36, dtype=np.uint8).reshape(3, 4, 3)[:, ::-1], 'bgr8', np.uint8),
])
def test_image_fields_round_trip_through_a_real_message(array, encoding, dtype):
    from sensor_msgs.msg import Image
    msg = Image(**image_fields(array, encoding))
    assert (msg.height, msg.width, msg.encoding) == (3, 4, encoding)
    assert msg.step == 4 * np.dtype(dtype).itemsize * (3 if array.ndim == 3 else 1)
    assert msg.is_bigendian == (np.dtype(dtype).newbyteorder('=').byteorder == '>')
    np.testing.assert_array_equal(
        np.frombuffer(msg.data, dtype).reshape(array.shape), array)


@pytest.mark.parametrize('encoding, expected', [
    ('rgb8', 'rgb8'), ('bgr8', 'bgr8'), ('rgba8', 'rgba8'), ('bgra8', 'bgra8'),
    ('mono8', 'rgb8'), ('mono16', 'rgb8'), ('yuv422', 'rgb8'), ('bayer_rggb8', 'rgb8'),
    (None, 'rgb8'),
])
@pytest.mark.parametrize('alpha', [0.0, 0.25, 1.0])
def test_overlay_keeps_the_colour_family_and_only_tints_classes(
        frame, encoding, expected, alpha):
    mask = np.zeros(frame.shape[:2], np.uint8)
    mask[100:200, 100:300] = 1
    mask[300:400, 200:250] = 5
    image = {'rgba8': np.dstack([frame, np.full(frame.shape[:2], 7, np.uint8)]),
             'bgra8': np.dstack([frame, np.full(frame.shape[:2], 7, np.uint8)]),
             'mono8': frame[:, :, 0], 'mono16': frame[:, :, 0]}.get(encoding, frame)
    picture, out_encoding = render_overlay(image, mask, alpha, encoding)
    assert out_encoding == expected
    rgb = picture[:, :, 2::-1] if expected.startswith('bgr') else picture[:, :, :3]
    source = np.dstack([image] * 3) if image.ndim == 2 else image[:, :, :3]
    np.testing.assert_array_equal(rgb[mask == 0], source[mask == 0])
    for label in (1, 5):  # alpha is the opacity of the class colour
        blended = np.round((1.0 - alpha) * source[mask == label].astype(float) +
                           alpha * PALETTE[label]).astype(int)
        assert np.abs(rgb[mask == label].astype(int) - blended).max() <= 1
    if expected.endswith('a8'):
        assert (picture[:, :, 3] == 7).all()

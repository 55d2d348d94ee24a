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

"""The cached remap and the compiled separable pass equal MediaPipe's ``warpPerspective``."""

import itertools

import cv2
from image_segmenter_ros.engine import preprocessing
import numpy as np
import pytest

IMAGE_SIZES = [(640, 480), (720, 528), (301, 199), (199, 301), (100, 60), (1280, 720), (33, 17)]
TENSOR_SIZES = [(256, 256), (256, 144), (64, 64), (80, 48)]


@pytest.mark.parametrize('rotation', preprocessing.SUPPORTED_ROTATIONS)
def test_remap_equals_warp_perspective(rotation):
    rng = np.random.default_rng(rotation)
    sizes = itertools.product(IMAGE_SIZES, TENSOR_SIZES)
    for (width, height), (tensor_width, tensor_height) in sizes:
        for channels in (1, 3, 4):
            image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
            matrix = preprocessing.warp_matrix(width, height, tensor_width, tensor_height,
                                               rotation)
            expected = cv2.warpPerspective(image, matrix, (tensor_width, tensor_height),
                                           flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
            actual = preprocessing.warp_to_tensor(image, tensor_width, tensor_height, rotation)
            np.testing.assert_array_equal(actual.reshape(expected.shape), expected)


@pytest.mark.parametrize('rotation', preprocessing.SUPPORTED_ROTATIONS)
@pytest.mark.parametrize('compiled', [True, False], ids=['compiled', 'remap'])
def test_image_to_tensor_equals_warp_perspective_then_fill(rotation, compiled, monkeypatch):
    if compiled:
        assert preprocessing.numba is not None, 'numba is missing'
    else:
        monkeypatch.setattr(preprocessing, 'numba', None)
    rng = np.random.default_rng(10 + rotation)
    scale, offset = preprocessing.value_range_transform(((127.5,), (127.5,)))
    sizes = itertools.product(IMAGE_SIZES, TENSOR_SIZES)
    for (width, height), (tensor_width, tensor_height) in sizes:
        matrix = preprocessing.warp_matrix(width, height, tensor_width, tensor_height, rotation)
        bgr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        images = {'gray': bgr[:, :, 0].copy(), 'rgb': bgr, 'bgr view': bgr[:, :, ::-1],
                  'rgba': rng.integers(0, 256, (height, width, 4), dtype=np.uint8),
                  'every other pixel': rng.integers(0, 256, (height, 2 * width, 3),
                                                    dtype=np.uint8)[:, ::2],
                  'one channel': bgr[:, :, :1]}
        assert rotation or preprocessing.separable_warp(
            width, height, 3, (0, 1, 2), tensor_width, tensor_height) is not None, \
            'the compiled pass would not run'
        for name, image in images.items():
            warped = cv2.warpPerspective(np.ascontiguousarray(image), matrix,
                                         (tensor_width, tensor_height),
                                         flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
            if warped.ndim == 2:
                warped = np.repeat(warped[:, :, np.newaxis], 3, axis=2)
            for dtype in (np.float32, np.uint8):
                tensor = np.full((tensor_height, tensor_width, 3), 7, dtype)
                preprocessing.image_to_tensor(image, tensor, scale, offset, rotation)
                expected = (warped[:, :, :3] if dtype == np.uint8 else
                            warped[:, :, :3].astype(np.float32) * scale + offset)
                assert np.array_equal(tensor, expected), (name, width, height, tensor_width,
                                                          tensor_height, dtype)


def test_value_range_follows_the_metadata():
    scale, offset = preprocessing.value_range_transform(((0.0,), (255.0,)))
    assert scale == np.float32(1.0) / np.float32(255.0) and offset == 0
    scale, offset = preprocessing.value_range_transform(((127.5,), (127.5,)))
    assert offset == np.float32(-1.0)
    assert np.float32(255) * scale + offset == np.float32(1.0)


def test_rotation_must_be_a_multiple_of_90():
    assert preprocessing.validate_rotation(-90) == 270
    with pytest.raises(ValueError, match='multiple of 90'):
        preprocessing.validate_rotation(45)


def test_image_to_tensor_refuses_an_image_with_fewer_channels_than_the_tensor():
    image = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(ValueError):
        preprocessing.image_to_tensor(image, np.zeros((4, 4, 4), np.float32), np.float32(1.0),
                                      np.float32(0.0))


def rgba_then_resize_and_fill(image, tensor, scale, offset, zero_alpha):
    """Run MediaPipe's 4-channel path as written: an RGBA copy resized, every channel filled."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.dstack([image, image, image])
    if image.shape[2] == 3:
        image = np.concatenate([image, np.zeros(image.shape[:2] + (1,), np.uint8)], axis=2)
    elif zero_alpha:
        image = image.copy()
        image[:, :, 3] = 0
    pixels = preprocessing.resize_to_tensor(np.ascontiguousarray(image), tensor.shape[1],
                                            tensor.shape[0])
    preprocessing.fill_tensor(pixels, tensor, scale, offset)


@pytest.mark.parametrize('compiled', [True, False], ids=['compiled', 'numpy'])
def test_four_channel_tensor_equals_an_rgba_copy_resized(compiled, monkeypatch):
    """Only channels with data are resized, a BGR view from its own buffer: the same tensor."""
    if not compiled:
        monkeypatch.setattr(preprocessing, 'numba', None)
    elif preprocessing.numba is None:
        pytest.skip('numba is not installed')
    rng = np.random.default_rng(4)
    value_ranges = [(np.float32(1 / 255), np.float32(0), np.float32),
                    (np.float32(2 / 255), np.float32(-1), np.float32),
                    (np.float32(1), np.float32(0), np.uint8)]
    for (width, height), (tensor_width, tensor_height) in itertools.product(
            [(640, 480), (1280, 720), (301, 199), (20, 24)], [(512, 512), (64, 48)]):
        rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
        images = [rgba[:, :, :3].copy(), rgba, rgba[:, :, 0].copy(), rgba[:, :, :1].copy(),
                  rgba[:, :, :3].copy()[:, :, ::-1], rgba[:, :, ::-1]]
        for image, zero_alpha, (scale, offset, dtype) in itertools.product(
                images, [True, False], value_ranges):
            expected = np.zeros((tensor_height, tensor_width, 4), dtype)
            rgba_then_resize_and_fill(image, expected, scale, offset, zero_alpha)
            pixels, order = preprocessing.four_channel_pixels(image, tensor_width,
                                                              tensor_height, zero_alpha)
            actual = np.full_like(expected, 7)
            preprocessing.fill_four_channel_tensor(pixels, order, actual, scale, offset)
            np.testing.assert_array_equal(actual, expected)

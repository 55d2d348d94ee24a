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

"""Camera payloads in every supported encoding, made from real RGB frames with OpenCV."""

from types import SimpleNamespace

import cv2
import numpy as np

PADDING = 13  # bytes of garbage after every row, to catch stride mistakes


def raw_message(pixels: np.ndarray, encoding: str, padding: int = 0,
                is_bigendian: bool = False) -> SimpleNamespace:
    """Pack an array row by row, like a camera driver, with optional row padding."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.full((rows.shape[0], rows.shape[1] + padding), 0xAB, np.uint8)
    padded[:, :rows.shape[1]] = rows
    return SimpleNamespace(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                           is_bigendian=is_bigendian, step=padded.shape[1],
                           data=padded.tobytes())


def bayer_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer filter named like ROS (first row, second row)."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for colour, (dy, dx) in zip(pattern, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, 'rgb'.index(colour)]
    return mosaic


def encode_pixels(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Return what a camera sending ``encoding`` would put in its rows for this RGB frame."""
    if encoding.startswith('bayer_'):
        return bayer_mosaic(rgb, encoding[len('bayer_'):-1])
    alpha = np.full(rgb.shape[:2], 200, np.uint8)
    return {
        'rgb8': lambda: rgb,
        'bgr8': lambda: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        'rgba8': lambda: np.dstack([rgb, alpha]),
        'bgra8': lambda: np.dstack([rgb[:, :, ::-1], alpha]),
        'mono8': lambda: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
        'mono16': lambda: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257,
        'yuv422': lambda: uyvy_pixels(rgb),
        # U Y0 V Y1 -> Y0 U Y1 V
        'yuv422_yuy2': lambda: uyvy_pixels(rgb).reshape(rgb.shape[0], -1, 4)[
            :, :, [1, 0, 3, 2]].reshape(rgb.shape[0], -1, 2),
    }[encoding]()


def uyvy_pixels(rgb: np.ndarray) -> np.ndarray:
    """
    Encode RGB as UYVY (BT.601, video range, chroma of each pixel pair averaged).

    Written out because OpenCV's encoder (COLOR_RGB2YUV_UYVY) is missing before 4.7, and
    Ubuntu 24.04 ships 4.6; the decoders under test exist in both.
    """
    rgb = rgb.astype(np.float64)
    luma = rgb @ [0.257, 0.504, 0.098] + 16
    pairs = (rgb[:, 0::2] + rgb[:, 1::2]) / 2
    u = pairs @ [-0.148, -0.291, 0.439] + 128
    v = pairs @ [0.439, -0.368, -0.071] + 128
    packed = np.stack([u, luma[:, 0::2], v, luma[:, 1::2]], axis=-1)
    return np.clip(np.round(packed), 0, 255).astype(np.uint8).reshape(rgb.shape[0], -1, 2)

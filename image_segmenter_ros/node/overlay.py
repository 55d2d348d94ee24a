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

"""Pictures of masks for people: class colours, overlays and a contact sheet with a legend."""

from typing import Optional, Tuple

import cv2
import numpy as np

# One colour (RGB) per class of a 21-class model (deeplab_v3), all far apart in CIELAB;
# class 0 (background) is left uncoloured.
PALETTE = np.array([
    (0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
    (213, 94, 0), (204, 121, 167), (153, 153, 153), (0, 0, 255), (128, 0, 0),
    (170, 110, 40), (128, 128, 0), (0, 128, 128), (0, 0, 128), (230, 25, 75),
    (60, 180, 75), (0, 255, 0), (145, 30, 180), (70, 240, 240), (240, 50, 230),
], dtype=np.uint8)

# Overlays keep a colour input's channel order; other inputs are drawn as rgb8.
_OVERLAY_FROM_RGB = {
    'bgr8': ('bgr8', cv2.COLOR_RGB2BGR),
    'rgba8': ('rgba8', None),
    'bgra8': ('bgra8', cv2.COLOR_RGBA2BGRA),
}


def class_colour(index: int) -> tuple:
    """Return the RGB colour of a class index (the palette repeats after 21 classes)."""
    return tuple(int(c) for c in PALETTE[index % len(PALETTE)])


def overlay(rgb: np.ndarray, category_mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend each non-background class's colour into an RGB image."""
    colours = PALETTE[category_mask % len(PALETTE)]
    blended = cv2.addWeighted(rgb, 1.0 - alpha, colours, alpha, 0.0)
    return np.where((category_mask > 0)[:, :, np.newaxis], blended, rgb)


def render_overlay(image: np.ndarray, category_mask: np.ndarray, alpha: float,
                   input_encoding: Optional[str]) -> Tuple[np.ndarray, str]:
    """
    Blend the class colours into the decoded input; return the picture and its encoding.

    Colour inputs keep their channel order (and alpha) so rviz shows them as the camera does;
    gray, Bayer, YUV and compressed inputs become rgb8.
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    blended = overlay(np.ascontiguousarray(image[:, :, :3]), category_mask, alpha)
    encoding, conversion = _OVERLAY_FROM_RGB.get(input_encoding, ('rgb8', None))
    if encoding.endswith('a8'):
        blended = np.dstack([blended, image[:, :, 3]])
    if conversion is not None:
        blended = cv2.cvtColor(blended, conversion)
    return blended, encoding

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

from typing import List, Sequence

import cv2
import numpy as np

# Distinct, colour-blind-friendly colours (RGB); class 0 (background) is left uncoloured.
PALETTE = np.array([
    (0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
    (213, 94, 0), (204, 121, 167), (153, 153, 153), (255, 255, 255), (128, 0, 0),
    (170, 110, 40), (128, 128, 0), (0, 128, 128), (0, 0, 128), (230, 25, 75),
    (60, 180, 75), (255, 225, 25), (145, 30, 180), (70, 240, 240), (240, 50, 230),
], dtype=np.uint8)


def class_colour(index: int) -> tuple:
    """Return the RGB colour of a class index (the palette repeats after 21 classes)."""
    return tuple(int(c) for c in PALETTE[index % len(PALETTE)])


def overlay(rgb: np.ndarray, category_mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend each non-background class's colour into an RGB image."""
    colours = PALETTE[category_mask % len(PALETTE)]
    blended = cv2.addWeighted(rgb, 1.0 - alpha, colours, alpha, 0.0)
    return np.where((category_mask > 0)[:, :, np.newaxis], blended, rgb)


def confidence_tile(mask: np.ndarray) -> np.ndarray:
    """Render a [0, 1] confidence mask as a colour-mapped RGB image."""
    grey = np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def contact_sheet(tiles: Sequence[np.ndarray], labels: List[str], columns: int = 4,
                  tile_width: int = 320, title: str = '') -> np.ndarray:
    """Arrange RGB tiles in a grid with a title and a colour legend underneath."""
    height, width = tiles[0].shape[:2]
    tile_height = int(round(height * tile_width / width))
    rows = -(-len(tiles) // columns)
    legend_height, title_height = 40, 36 if title else 0
    sheet = np.full((title_height + rows * tile_height + legend_height, columns * tile_width, 3),
                    255, np.uint8)
    if title:
        cv2.putText(sheet, title, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2,
                    cv2.LINE_AA)
    for i, tile in enumerate(tiles):
        y, x = title_height + (i // columns) * tile_height, (i % columns) * tile_width
        sheet[y:y + tile_height, x:x + tile_width] = cv2.resize(
            tile, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
    x, y = 10, title_height + rows * tile_height + 12
    for index, label in enumerate(labels):
        cv2.rectangle(sheet, (x, y), (x + 18, y + 18), class_colour(index), -1)
        cv2.rectangle(sheet, (x, y), (x + 18, y + 18), (0, 0, 0), 1)
        cv2.putText(sheet, '%d %s' % (index, label), (x + 24, y + 15),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += 34 + 9 * len('%d %s' % (index, label))
    return sheet

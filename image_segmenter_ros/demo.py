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
Demo: segment frames of a real video with the engine and write a picture of the masks.

``python -m image_segmenter_ros.demo`` (run by ``make demo``) writes ``<output>/demo.png``:
frames of Megamind.avi with the category mask blended in, the confidence mask beside them,
and prints per-frame timings.
"""

import argparse
import os
from pathlib import Path
import sys
import time
from typing import List, Optional, Sequence

import cv2
import numpy as np

from . import ImageSegmenter, ImageSegmenterOptions, visualization

DEFAULT_VIDEO = Path(os.environ.get(
    'IMAGE_SEGMENTER_ROS_VIDEO_DIR',
    Path.home() / '.cache' / 'image_segmenter_ros' / 'videos')) / 'Megamind.avi'


def read_frames(video: Path, count: int) -> List[np.ndarray]:
    """Read ``count`` RGB frames spread evenly over the video."""
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if not capture.isOpened() or total <= 0:
        raise FileNotFoundError('Cannot read video %s (run `make videos`).' % video)
    frames = []
    for index in np.linspace(0, total - 1, count + 2).astype(int)[1:-1]:
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def confidence_tile(mask: np.ndarray) -> np.ndarray:
    """Render a [0, 1] confidence mask as a colour-mapped RGB image."""
    grey = np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--video', type=Path, default=DEFAULT_VIDEO)
    parser.add_argument('--model', default='selfie_segmentation')
    parser.add_argument('--frames', type=int, default=6)
    parser.add_argument('--output', type=Path, default=Path('output'))
    args = parser.parse_args(argv)

    frames = read_frames(args.video, args.frames)
    options = ImageSegmenterOptions(model_path=args.model, output_category_mask=True)
    tiles, timings = [], []
    with ImageSegmenter.create_from_options(options) as segmenter:
        for frame in frames:
            start = time.perf_counter()
            result = segmenter.segment(frame)
            timings.append((time.perf_counter() - start) * 1000.0)
            tiles.append(visualization.overlay(frame, result.category_mask))
            tiles.append(confidence_tile(result.confidence_masks[-1]))
        labels = segmenter.display_names
    height, width = frames[0].shape[:2]
    sheet = visualization.contact_sheet(
        tiles, labels, columns=4,
        title='%s on %s (%dx%d): category mask overlay | confidence of "%s"'
        % (args.model, args.video.name, width, height, labels[-1]))
    args.output.mkdir(parents=True, exist_ok=True)
    picture = args.output / 'demo.png'
    cv2.imwrite(str(picture), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print('Segmented %d frames of %s with %s: median %.1f ms per frame (both masks).'
          % (len(frames), args.video.name, args.model, float(np.median(timings))))
    print('Wrote %s' % picture)
    return 0


if __name__ == '__main__':
    sys.exit(main())

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
render: a picture (and optionally a video) of the masks in a bag, for people.

``render BAG OUTPUT.png [--mp4 OUT.mp4]`` pairs each recorded ``category_mask`` with the
camera frame of the same header, blends the class colours in, and writes a contact sheet of
frames spread over the bag with a legend of the classes they show; beside each frame, the
confidence mask of one class when the bag has it (``--confidence-class``, default the class
covering most pixels besides the background). Class names come from the bag's ``labels``
topic, else from ``--model``. ``--mp4`` writes every paired frame as a video.
"""

import argparse
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import yaml

from .bag_io import BagError, BagReader, IMAGE_TYPE, IMAGE_TYPES
from .cli import join_topic, open_bag, output_namespace, run
from ..engine import RunningMode
from ..node.input_images import message_to_array
from ..node.output_messages import CATEGORY_TOPIC, confidence_topics, LABELS_TOPIC
from ..node.overlay import class_colour, render_overlay
from ..node.parameters import create_segmenter, load_parameters

NAME = 'render'
ALPHA = 0.5
# Frames held for the video while their mask has not come: a frame whose mask never comes
# (dropped by a LIVE_STREAM node) is forgotten once this many newer ones wait.
PENDING_FRAMES = 64
LEGEND_ROW = 26  # pixels from one legend row to the next
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _key(msg: Any) -> Tuple[int, int, str]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id


def _pixels(msg: Any) -> np.ndarray:
    if getattr(msg, 'encoding', None) == '32FC1':  # a confidence mask
        return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)
    return message_to_array(msg)


def _topics(reader: BagReader, mask_topic: Optional[str]) -> Tuple[str, List[str]]:
    """Return the category mask topic and the camera topics its frames may come from."""
    masks = sorted(t for t, kind in reader.topics.items()
                   if kind == IMAGE_TYPE and t.endswith('/' + CATEGORY_TOPIC))
    if mask_topic:
        reader.check_topics([mask_topic])
    elif not masks:
        raise BagError('Bag %s has no %s topic: segment it first (segment_bag), or record '
                       'the node.' % (reader.path, CATEGORY_TOPIC))
    mask_topic = mask_topic or masks[0]
    namespace = mask_topic[:-len(CATEGORY_TOPIC)].rstrip('/') or '/'
    produced = ('/' + CATEGORY_TOPIC, '/overlay', '/confidence_masks/')
    cameras = [t for t in reader.image_topics() if not any(p in t for p in produced)]
    same = [t for t in cameras if output_namespace(t, reader.topics[t]) == namespace]
    if not (same or cameras):
        raise BagError('Bag %s has no camera images beside %s (%s).' % (
            reader.path, mask_topic, ' or '.join(IMAGE_TYPES)))
    return mask_topic, same or cameras


def _labels(reader: BagReader, namespace: str, model: str) -> Dict[str, Any]:
    """Read the recorded ``labels`` message, else describe the model's classes."""
    topic = join_topic(namespace, LABELS_TOPIC)
    if topic in reader.topics:
        for message in reader.messages([topic]):
            return yaml.safe_load(reader.decode(message).data)
    with create_segmenter(load_parameters(overrides={'model': model}).get,
                          RunningMode.IMAGE) as segmenter:
        names = segmenter.display_names
    return {'model': model, 'classes': [
        {'name': label, 'display_name': name, 'confidence_topic': topic}
        for label, name, topic in zip(segmenter.labels, names,
                                      confidence_topics(segmenter.labels))]}


def _model_name(model: str) -> str:
    """Name a model for a title: a file's stem rather than its full path."""
    return Path(model).stem if model.endswith('.tflite') else model


def _confidence_class(classes: List[Dict[str, Any]], counts: np.ndarray,
                      choice: Optional[str], has_topic: Any) -> Optional[int]:
    """
    Pick the class whose confidence mask is drawn: the user's, else the one most seen.

    The default is the class covering most pixels of the pictured frames besides background
    (background if nothing else shows), among those whose confidence masks the bag has.
    """
    if choice is not None:
        for index, entry in enumerate(classes):
            if choice in (str(index), entry.get('name'), entry.get('display_name')):
                if not has_topic(entry):
                    raise BagError('The bag has no confidence masks of class %s (%r).'
                                   % (index, entry['display_name']))
                return index
        raise BagError('--confidence-class %r names no class of the model (%s).' % (
            choice, ', '.join(entry['display_name'] for entry in classes)))
    ranked = sorted(range(len(classes)), key=lambda i: (i == 0, -counts[i], i))
    return next((i for i in ranked if has_topic(classes[i])), None)


def render(bag: Path, picture: Path, mp4: Optional[Path] = None, tiles: int = 8,
           columns: int = 4, model: str = 'selfie_segmentation',
           mask_topic: Optional[str] = None, confidence_class: Optional[str] = None) -> int:
    """Write the contact sheet (and video); return the number of frames with a mask."""
    with open_bag(NAME, bag) as reader:
        mask_topic, cameras = _topics(reader, mask_topic)
        namespace = mask_topic[:-len(CATEGORY_TOPIC)].rstrip('/') or '/'
        labels = _labels(reader, namespace, model)
        classes = labels['classes']
        keys, histograms = [], []  # pixels of each class, per mask
        for message in reader.messages([mask_topic]):
            msg = reader.decode(message)
            keys.append(_key(msg))
            histograms.append(np.bincount(_pixels(msg).ravel(), minlength=256))
        if not keys:
            raise BagError('Bag %s has no messages on %s.' % (bag, mask_topic))
        # Spread over the bag, first and last frames left out (often black or cut).
        spread = np.linspace(0, len(keys) - 1, tiles + 2, dtype=int)
        picked = spread[1:-1] if len(keys) > tiles else spread
        chosen = {keys[i] for i in picked}
        counts = np.sum([histograms[i] for i in picked], axis=0)

        def topic_of(entry: Dict[str, Any]) -> Optional[str]:
            relative = entry['confidence_topic']  # null without confidence masks
            topic = relative and join_topic(namespace, relative)
            return topic if topic in reader.topics else None
        shown = _confidence_class(classes, counts, confidence_class, topic_of)
        confidence = None if shown is None else topic_of(classes[shown])
        found: Dict[Tuple, Dict[str, np.ndarray]] = {}
        video = _Video(mp4, keys) if mp4 else None
        written = set()
        wanted = cameras + [mask_topic] + ([confidence] if confidence else [])
        for message in reader.messages(wanted):
            msg = reader.decode(message)
            key = _key(msg)
            if key not in chosen and (video is None or key in written):
                continue
            parts = found.setdefault(key, {})
            parts[message.topic if message.topic in (mask_topic, confidence) else 'image'] = \
                _pixels(msg)
            if video is not None and key not in written and 'image' in parts and \
                    mask_topic in parts:
                video.write(_overlay(parts['image'], parts[mask_topic]))
                written.add(key)
                if key not in chosen:
                    del found[key]
            pending = [waiting for waiting in found if waiting not in chosen]
            for stale in pending[:-PENDING_FRAMES]:
                del found[stale]
        if video is not None:
            video.close()
    pairs = [found[key] for key in sorted(chosen)
             if 'image' in found.get(key, {}) and mask_topic in found[key]]
    if not pairs:
        raise BagError('Bag %s: no %s message has a camera frame with the same header on %s.'
                       % (bag, mask_topic, ', '.join(cameras)))
    sheet_tiles = []
    for parts in pairs:
        sheet_tiles.append(_overlay(parts['image'], parts[mask_topic]))
        if confidence in parts:
            sheet_tiles.append(confidence_tile(parts[confidence]))
    height, width = pairs[0]['image'].shape[:2]
    title = '%s on %s (%dx%d): category mask overlay%s' % (
        _model_name(str(labels.get('model', model))), bag.name, width, height,
        ' | confidence of "%s"' % classes[shown]['display_name'] if confidence else '')
    legend = [(index, entry['display_name']) for index, entry in enumerate(classes)
              if index and index < len(counts) and counts[index]]
    sheet = contact_sheet(sheet_tiles, legend, columns, title=title)
    picture.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(picture), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise BagError('Cannot write %s.' % picture)
    return len(keys)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return render_overlay(image, mask, ALPHA, None)[0]


class _Video:
    """An MP4 of overlays at the bag's frame rate (from the header stamps)."""

    def __init__(self, path: Path, keys: Sequence[Tuple[int, int, str]]):
        stamps = np.array([sec + nanosec * 1e-9 for sec, nanosec, _ in keys])
        steps = np.diff(stamps)
        steps = steps[steps > 0]
        self.fps = float(1.0 / np.median(steps)) if steps.size else 30.0
        self.path = path
        self._writer: Optional[cv2.VideoWriter] = None

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*'mp4v'),
                                           self.fps, (rgb.shape[1], rgb.shape[0]))
            if not self._writer.isOpened():
                raise BagError('Cannot write video %s (no mp4v encoder).' % self.path)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def confidence_tile(mask: np.ndarray) -> np.ndarray:
    """Render a [0, 1] confidence mask as a colour-mapped RGB image."""
    grey = np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def _fitted(text: str, width: int, scale: float, thickness: int) -> Tuple[str, float]:
    """Shrink a line of text (to 0.45 of its scale at most, then cut it) to fit ``width``."""
    for factor in np.linspace(1.0, 0.45, 12):
        if cv2.getTextSize(text, _FONT, scale * factor, thickness)[0][0] <= width:
            return text, scale * factor
    scale *= 0.45
    while len(text) > 1 and cv2.getTextSize(text + '...', _FONT, scale, thickness)[0][0] > width:
        text = text[:-1]
    return text + '...', scale


def _legend_layout(legend: Sequence[Tuple[int, str]],
                   width: int) -> Tuple[List[Tuple[int, int, int, str]], int]:
    """Place legend entries left to right, wrapping before the right edge; count the rows."""
    placed, x, row = [], 10, 0
    for index, label in legend:
        text, _ = _fitted('%d %s' % (index, label), width - 54, 0.5, 1)
        entry_width = 24 + cv2.getTextSize(text, _FONT, 0.5, 1)[0][0] + 16
        if x > 10 and x + entry_width > width - 10:
            x, row = 10, row + 1
        placed.append((x, row, index, text))
        x += entry_width
    return placed, row + 1 if placed else 0


def contact_sheet(tiles: Sequence[np.ndarray], legend: Sequence[Tuple[int, str]],
                  columns: int = 4, tile_width: int = 320, title: str = '') -> np.ndarray:
    """
    Arrange RGB tiles in a grid under a title, with a legend of (class index, name) beneath.

    The title shrinks to fit the sheet and the legend wraps, so 21 classes stay readable.
    """
    height, width = tiles[0].shape[:2]
    tile_height = int(round(height * tile_width / width))
    rows = -(-len(tiles) // columns)
    sheet_width = columns * tile_width
    placed, legend_rows = _legend_layout(legend, sheet_width)
    legend_height, title_height = 14 + LEGEND_ROW * legend_rows, 36 if title else 0
    sheet = np.full((title_height + rows * tile_height + legend_height, sheet_width, 3),
                    255, np.uint8)
    if title:
        text, scale = _fitted(title, sheet_width - 20, 0.7, 2)
        cv2.putText(sheet, text, (10, 25), _FONT, scale, (0, 0, 0), 2, cv2.LINE_AA)
    for i, tile in enumerate(tiles):
        y, x = title_height + (i // columns) * tile_height, (i % columns) * tile_width
        sheet[y:y + tile_height, x:x + tile_width] = cv2.resize(
            tile, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
    top = title_height + rows * tile_height + 12
    for x, row, index, text in placed:
        y = top + LEGEND_ROW * row
        cv2.rectangle(sheet, (x, y), (x + 18, y + 18), class_colour(index), -1)
        cv2.rectangle(sheet, (x, y), (x + 18, y + 18), (0, 0, 0), 1)
        cv2.putText(sheet, text, (x + 24, y + 15), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and render the bag."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.strip().splitlines()[0])
    parser.add_argument('bag', type=Path)
    parser.add_argument('output', type=Path, help='PNG picture to write')
    parser.add_argument('--mp4', type=Path, help='also write every frame as an MP4 video')
    parser.add_argument('--tiles', type=int, default=8, help='frames on the picture')
    parser.add_argument('--columns', type=int, default=4)
    parser.add_argument('--model', default='selfie_segmentation',
                        help='class names when the bag has no labels topic')
    parser.add_argument('--mask-topic', help='default: the first */category_mask topic')
    parser.add_argument('--confidence-class', metavar='NAME_OR_INDEX',
                        help='class whose confidence mask is drawn beside each frame '
                             '(default: the one covering most pixels besides background)')
    args = parser.parse_args(argv)

    def body() -> int:
        count = render(args.bag, args.output, args.mp4, args.tiles, args.columns, args.model,
                       args.mask_topic, args.confidence_class)
        print('%s: %d masked frames in %s; wrote %s%s' % (
            NAME, count, args.bag, args.output, ' and %s' % args.mp4 if args.mp4 else ''))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())

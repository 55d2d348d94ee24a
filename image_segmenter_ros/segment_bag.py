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
segment_bag: segment the image topics of a rosbag2 offline, as the node would live.

``segment_bag INPUT OUTPUT [--model NAME|PATH] [--params-file YAML] [--topics T ...] [--force]``
copies every message of INPUT to OUTPUT and adds, for each frame of the chosen image topics
(raw and compressed), the masks the node would publish for it: the same topic names, header,
encodings and values, built by the node's own code (``outputs``, ``parameters``). Every frame
gets exactly one message per enabled output, stored at the frame's receive time; frames that
do not decode are counted, reported and skipped.
"""

import argparse
import ctypes
from dataclasses import dataclass
from pathlib import Path
import queue
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import String
from tqdm import tqdm

from .bag_io import (BagError, BagMessage, BagReader, BagWriter, DecodeError, describe,
                     IMAGE_TYPE, IMAGE_TYPES, qos_to_bag, refuse_existing, STORAGES)
from .cli import join_topic, output_namespace, run
from .image_conversions import compressed_to_array, image_to_array, InvalidImageError
from .outputs import (category_message, CATEGORY_TOPIC, confidence_message, confidence_topics,
                      LABELS_TOPIC, labels_yaml, overlay_message, OVERLAY_TOPIC)
from .parameters import create_segmenter, load_parameters, model_name
from .segmenter import ImageSegmenter, RunningMode

NAME = 'segment_bag'
# The node's publisher profiles, recorded as the offered QoS of the output topics.
_RELIABLE = qos_to_bag(QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
_LATCHED = qos_to_bag(QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                                 durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))

_ABORT = object()  # tells the writer thread to drop the bag
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h


@dataclass
class _Camera:
    """One segmented input topic and the absolute names of its outputs."""

    topic: str
    namespace: str
    category: Optional[str]
    confidences: List[Tuple[int, str]]
    overlay: Optional[str]
    labels: str
    labels_written: bool = False


class _WriterThread:
    """
    Serializes and stores messages beside the segmentation, in the order they were given.

    Storing a frame's masks (megabytes of copies) overlaps with segmenting the next frame;
    the queue is short, so memory stays bounded when the disk is slower than the engine.
    The bag is created, written and closed in this thread (sqlite3 connections must stay in
    the thread that opened them); on any failure it is dropped, never left half written.
    """

    def __init__(self, output: Path, create: Callable[[], BagWriter]):
        self._output = output
        self._create = create
        self._queue: 'queue.Queue[Any]' = queue.Queue(maxsize=16)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name='bag_writer', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        writer = None
        complete = False
        try:
            writer = self._create()
            while True:
                item = self._queue.get()
                if item is None or item is _ABORT:
                    complete = item is None
                    return
                topic, timestamp, payload = item
                if isinstance(payload, bytes):
                    writer.write_raw(topic, timestamp, payload)
                else:
                    writer.write(topic, timestamp, payload)
        except Exception as error:  # noqa: B902 - handed to the main thread by put/finish
            self._error = error
            while self._queue.get() not in (None, _ABORT):  # let the main thread go on
                pass
        finally:
            if writer is not None:
                writer.close() if complete and self._error is None else writer.abort()

    def _raise(self) -> None:
        if self._error is not None:
            raise BagError('Cannot write %s: %s' % (self._output, self._error))

    def put(self, topic: str, timestamp: int, payload: Any) -> None:
        self._raise()
        self._queue.put((topic, timestamp, payload))

    def finish(self, complete: bool) -> None:
        """Close the bag (or drop it when not ``complete``); re-raise a write failure."""
        self._queue.put(None if complete else _ABORT)
        self._thread.join()
        self._raise()


def keep_freed_memory() -> None:
    """
    Let glibc reuse freed frame buffers instead of handing them back to the kernel.

    Every frame allocates and frees several megabyte-sized buffers (messages, CDR bytes,
    storage chunks); by default each comes from a fresh mmap whose pages fault in again,
    which costs more than the copies themselves. A no-op where glibc is not the C library.
    """
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 25)  # glibc's largest allowed threshold (32 MiB)


def _cameras(reader: BagReader, topics: Sequence[str], namespace: Optional[str],
             labels: Sequence[str], values: Dict[str, Any], overlay: bool) -> Dict[str, _Camera]:
    cameras = {}
    taken: Dict[str, str] = {}
    for topic in topics:
        ns = namespace or output_namespace(topic, reader.topics[topic])
        if ns in taken:
            raise BagError('Topics %s and %s would both publish their masks in %s: segment them '
                           'in separate runs, or pass --output-namespace for each.'
                           % (taken[ns], topic, ns))
        taken[ns] = topic
        cameras[topic] = _Camera(
            topic, ns,
            join_topic(ns, CATEGORY_TOPIC) if values['output_category_mask'] else None,
            [(index, join_topic(ns, name)) for index, name in enumerate(
                confidence_topics(labels))] if values['output_confidence_masks'] else [],
            join_topic(ns, OVERLAY_TOPIC) if overlay else None,
            join_topic(ns, LABELS_TOPIC))
    return cameras


def _choose_topics(reader: BagReader, topics: Optional[Sequence[str]]) -> List[str]:
    if topics:
        reader.check_topics(topics)
        wrong = [t for t in topics if reader.topics[t] not in IMAGE_TYPES]
        if wrong:
            raise BagError('Bag %s: topic %s is %s, not an image (%s).' % (
                reader.path, wrong[0], reader.topics[wrong[0]], ' or '.join(IMAGE_TYPES)))
        return list(topics)
    found = reader.image_topics()
    if not found:
        raise BagError('Bag %s has no image topics (%s); its topics: %s.' % (
            reader.path, ' or '.join(IMAGE_TYPES),
            ', '.join('%s (%s)' % item for item in sorted(reader.topics.items())) or 'none'))
    return found


class _Segmentation:
    """The node's per-frame work on one bag message: decode once, compute enabled outputs."""

    def __init__(self, segmenter: ImageSegmenter, values: Dict[str, Any], overlay: bool):
        self._segmenter = segmenter
        self._values = values
        self._overlay = overlay

    def outputs(self, camera: _Camera, msg: Any) -> List[Tuple[str, Any]]:
        values = self._values
        convert = compressed_to_array if isinstance(msg, CompressedImage) else image_to_array
        image = convert(msg, values['max_input_pixels'])
        result = self._segmenter.segment(
            image, values['rotation_degrees'],
            output_confidence_masks=bool(camera.confidences),
            output_category_mask=bool(camera.category or camera.overlay))
        header = msg.header
        produced = []
        if camera.category:
            produced.append((camera.category, category_message(header, result)))
        produced += [(topic, confidence_message(header, result, index))
                     for index, topic in camera.confidences]
        if camera.overlay:
            produced.append((camera.overlay, overlay_message(
                header, image, result, values['overlay_alpha'], getattr(msg, 'encoding', None))))
        return produced


def segment_bag(input_path: Path, output_path: Path, model: Optional[str] = None,
                params_file: Optional[Path] = None, topics: Optional[Sequence[str]] = None,
                force: bool = False, namespace: Optional[str] = None, overlay: bool = False,
                storage: str = 'mcap', progress: bool = True) -> Tuple[int, List[str]]:
    """
    Write OUTPUT: INPUT's messages plus the node's outputs for every frame of ``topics``.

    Returns the number of frames segmented and the problems of the frames that were skipped.
    """
    values = load_parameters(params_file, {'model': model} if model else None)
    refuse_existing(output_path, force)
    with BagReader(input_path) as reader:
        chosen = _choose_topics(reader, topics)
        segmenter = create_segmenter(values.get, RunningMode.IMAGE)
        cameras = _cameras(reader, chosen, namespace, segmenter.labels, values, overlay)
        labels = String(data=labels_yaml(model_name(values.get), values['display_names_locale'],
                                         segmenter.labels, segmenter.display_names))
        work = _Segmentation(segmenter, values, overlay)
        skipped: List[str] = []
        done = 0

        def create() -> BagWriter:
            writer = BagWriter(output_path, storage, force)
            for topic, connections in reader.connections.items():
                writer.add_topic(topic, reader.topics[topic], like=connections[0])
            for camera in cameras.values():
                for name in [camera.category, camera.overlay] + [t for _, t in
                                                                 camera.confidences]:
                    if name:
                        writer.add_topic(name, IMAGE_TYPE, [_RELIABLE])
                writer.add_topic(camera.labels, 'std_msgs/msg/String', [_LATCHED])
            return writer
        store = _WriterThread(output_path, create)
        bar = tqdm(total=reader.count(chosen), unit='frame', desc=NAME, disable=not progress,
                   dynamic_ncols=True)
        complete = False
        try:
            for message in reader.messages(list(reader.topics)):
                store.put(message.topic, message.timestamp_ns, message.raw)
                camera = cameras.get(message.topic)
                if camera is None:
                    continue
                if not camera.labels_written:
                    store.put(camera.labels, message.timestamp_ns, labels)
                    camera.labels_written = True
                problem = _segment_one(reader, work, camera, message, store)
                if problem:
                    skipped.append(problem)
                    bar.write('%s: skipped: %s' % (NAME, problem), file=sys.stderr)
                else:
                    done += 1
                bar.update()
            complete = True
        finally:
            bar.close()
            store.finish(complete)
    return done, skipped


def _segment_one(reader: BagReader, work: _Segmentation, camera: _Camera, message: BagMessage,
                 store: _WriterThread) -> Optional[str]:
    """Queue the outputs of one frame; return why it was skipped, or None."""
    try:
        outputs = work.outputs(camera, reader.decode(message))
    except DecodeError as error:
        return str(error)
    except (InvalidImageError, ValueError) as error:
        return describe(reader.path, message, error)
    for topic, msg in outputs:
        store.put(topic, message.timestamp_ns, msg)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and segment the bag; exit 1 with one sentence on bad input."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.strip().splitlines()[0])
    parser.add_argument('input', type=Path, help='rosbag2 directory, .mcap or .db3 file')
    parser.add_argument('output', type=Path, help='new rosbag2 directory')
    parser.add_argument('--model', help='short name or .tflite path (overrides the file)')
    parser.add_argument('--params-file', type=Path,
                        help='ROS parameter file, e.g. config/selfie_segmentation.yaml')
    parser.add_argument('--topics', nargs='+', help='image topics (default: all of them)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUTPUT')
    parser.add_argument('--output-namespace', help='namespace of the mask topics (default: '
                        "the input topic's, as for a node pushed into the camera namespace)")
    parser.add_argument('--overlay', action='store_true', help='also write the overlay topic')
    parser.add_argument('--storage', choices=sorted(STORAGES), default='mcap',
                        help='storage of OUTPUT (default mcap, as ros2 bag in Jazzy)')
    args = parser.parse_args(argv)
    keep_freed_memory()

    def body() -> int:
        done, skipped = segment_bag(args.input, args.output, args.model, args.params_file,
                                    args.topics, args.force, args.output_namespace,
                                    args.overlay, args.storage)
        print('%s: segmented %d frames%s; wrote %s' % (
            NAME, done, ', skipped %d that did not decode' % len(skipped) if skipped else '',
            args.output))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())

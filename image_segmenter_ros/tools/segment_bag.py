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
(raw and compressed), the masks the node would publish for it: the node's topic names and
parameters (``outputs``, ``parameters``), the input's header, the node's encodings and values
(the tests compare with a recording of the live node). Every frame gets exactly one message
per enabled output, stored at the frame's receive time; frames that do not decode are
counted, reported and skipped.

OUTPUT is written in place and flushed every half second. A run that is stopped (Ctrl-C) or
killed leaves it unfinished but readable, holding the frames segmented until then;
``--resume`` goes on from there: it keeps those frames, segments the rest and completes
OUTPUT, message for message the bag an uninterrupted run writes.

Threads overlap: one reads and decodes the next frames, ``--jobs`` engines segment several
frames at once (each on its own thread, with ``num_threads // jobs`` inference threads), and
one stores every message in the input's order. Frames and masks travel as CDR around views of
their pixels (``image_cdr``): input frames go from the memory-mapped bag to the output file,
masks from the engine's arrays, never through rclpy messages or the copies its serializer
makes.
"""

import argparse
import collections
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
import os
from pathlib import Path
import queue
import shutil
import sys
import threading
from typing import (Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple,
                    TypeVar, Union)

import numpy as np
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import serialize_message
from std_msgs.msg import Header, String
from tqdm import tqdm

from .bag_io import (BagError, BagMessage, BagReader, BagWriter, DecodeError, describe,
                     IMAGE_TYPE, IMAGE_TYPES, is_complete, qos_to_bag, refuse_existing,
                     storage_files, STORAGES)
from .cli import join_topic, open_bag, output_namespace, run
from ..engine import ImageSegmenter, keep_freed_memory, RunningMode
from ..node.image_cdr import CdrError, decode_image, encode_image
from ..node.input_images import message_to_array
from ..node.output_messages import (CATEGORY_TOPIC, confidence_topics, LABELS_TOPIC, labels_yaml,
                                    OVERLAY_TOPIC)
from ..node.overlay import render_overlay
from ..node.parameters import (ConfigurationError, create_segmenter, load_parameters,
                               model_name)

NAME = 'segment_bag'
# The node's publisher profiles, recorded as the offered QoS of the output topics.
_RELIABLE = qos_to_bag(QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
_LATCHED = qos_to_bag(QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                                 durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))

_ABORT = object()  # tells the writer thread to drop the bag
_KEEP = object()  # tells the writer thread to leave the bag unfinished, to be resumed
_END = object()  # the reader thread has no more messages
_AHEAD = 4  # frames decoded ahead of the segmentation
# Frames segmented at once by default: one per CPU, at most 4 (each holds an engine and its
# frame's masks in memory).
DEFAULT_JOBS = min(os.cpu_count() or 1, 4)
Outputs = List[Tuple[str, Tuple[Any, ...]]]
T = TypeVar('T')


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
    Stores CDR messages beside the segmentation, in the order they were given.

    Storing a frame's masks (megabytes of copies) overlaps with segmenting the next frame;
    the queue is short, so memory stays bounded when the disk is slower than the engine.
    The bag is created, written and closed in this thread (sqlite3 connections must stay in
    the thread that opened them); on a failure it is dropped, when interrupted it is left
    unfinished (flushed, readable) for ``--resume``.
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
        end: Any = _ABORT
        try:
            writer = self._create()
            while True:
                item = self._queue.get()
                if item in (None, _ABORT, _KEEP):
                    end = item
                    return
                topic, timestamp, parts = item
                writer.write_raw(topic, timestamp, *parts)
        except Exception as error:  # noqa: B902 - handed to the main thread by put/finish
            self._error = error
            while self._queue.get() not in (None, _ABORT, _KEEP):  # let the main thread go on
                pass
        finally:
            if writer is not None:
                if end is None and self._error is None:
                    writer.close()
                elif end is _KEEP and self._error is None:
                    writer.leave_unfinished()
                else:
                    writer.abort()

    def _raise(self) -> None:
        if self._error is not None:
            raise BagError('Cannot write %s: %s' % (self._output, self._error))

    def put(self, topic: str, timestamp: int, *parts: Any) -> None:
        """Queue one message: its CDR bytes, whole or in consecutive pieces."""
        self._raise()
        self._queue.put((topic, timestamp, parts))

    def finish(self, complete: bool, keep: bool = False) -> None:
        """Close the bag, else leave it unfinished (``keep``) or drop it; re-raise a failure."""
        self._queue.put(None if complete else _KEEP if keep else _ABORT)
        self._thread.join()
        self._raise()


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


def _ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """
    Yield ``items``, produced by a thread up to ``depth`` ahead; its errors are raised here.

    Closing the generator stops the thread, so the bag it reads can be closed after it.
    """
    slots: 'queue.Queue[Tuple[Any, Optional[BaseException]]]' = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((item, None))
            slots.put((_END, None))
        except Exception as error:  # noqa: B902 - raised in the consuming thread
            slots.put((_END, error))
    thread = threading.Thread(target=produce, name='bag_reader', daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock its last put
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass


@dataclass
class _Frame:
    """A decoded input frame: what the engine takes and what its outputs are stamped with."""

    header: Header
    image: np.ndarray
    encoding: Optional[str]  # of a raw input, for the overlay


class _Segmentation:
    """
    The node's per-frame work on bag messages: decode once, compute the enabled outputs.

    Frames are segmented by a pool of engines, one per worker thread, so that several frames
    are in the engine at once; results come back as futures, to be stored in input order.
    """

    def __init__(self, reader: BagReader, segmenters: List[ImageSegmenter],
                 values: Dict[str, Any]):
        self._reader = reader
        self._idle: 'queue.SimpleQueue[ImageSegmenter]' = queue.SimpleQueue()
        for segmenter in segmenters:
            self._idle.put(segmenter)
        self._values = values
        self._pool = ThreadPoolExecutor(len(segmenters), thread_name_prefix='segment')

    def close(self) -> None:
        """Drop frames not started yet and wait for those being segmented."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def decode(self, message: BagMessage) -> Union[_Frame, str]:
        """
        Decode a frame for the engine, or say why it cannot be (bag, topic, message index).

        Raw images are read in place; what the CDR reader refuses goes to rclpy, which
        either reads it or words why it cannot.
        """
        try:
            msg: Any = None
            if message.msgtype == IMAGE_TYPE:
                try:
                    msg = decode_image(message.raw)
                except CdrError:
                    pass
            if msg is None:
                msg = self._reader.decode(message)
            return _Frame(msg.header, message_to_array(msg, self._values['max_input_pixels']),
                          getattr(msg, 'encoding', None))
        except DecodeError as error:
            return str(error)
        except ValueError as error:  # InvalidImageError, or any other refusal of the frame
            return describe(self._reader.path, message, error)

    def submit(self, camera: _Camera, message: BagMessage,
               frame: _Frame) -> 'Future[Union[Outputs, str]]':
        """Segment a frame on the next free engine; the future gives its outputs or a problem."""
        return self._pool.submit(self._outputs, camera, message, frame)

    def _outputs(self, camera: _Camera, message: BagMessage,
                 frame: _Frame) -> Union[Outputs, str]:
        """
        Return each enabled output topic with its message's CDR pieces, or why there are none.

        The pieces hold views of the result's masks, which the engine allocates anew for every
        frame: they stay valid while the writer thread stores them.
        """
        values = self._values
        segmenter = self._idle.get()
        try:
            result = segmenter.segment(
                frame.image, values['rotation_degrees'],
                output_confidence_masks=bool(camera.confidences),
                output_category_mask=bool(camera.category or camera.overlay))
        except ValueError as error:
            return describe(self._reader.path, message, error)
        finally:
            self._idle.put(segmenter)
        produced = []
        if camera.category:
            produced.append((camera.category,
                             encode_image(frame.header, result.category_mask, 'mono8')))
        produced += [(topic, encode_image(frame.header, result.confidence_masks[index], '32FC1'))
                     for index, topic in camera.confidences]
        if camera.overlay:
            picture, encoding = render_overlay(frame.image, result.category_mask,
                                               values['overlay_alpha'], frame.encoding)
            produced.append((camera.overlay, encode_image(frame.header, picture, encoding)))
        return produced


def _interrupted_run(output: Path) -> Optional[Path]:
    """
    Move the unfinished OUTPUT of an interrupted run aside for ``--resume``; return where.

    A resume that was itself interrupted leaves two: the one that got further is kept.
    """
    aside = output.parent / ('.%s.resumed' % output.name)
    if output.exists() and is_complete(output):
        raise BagError('Output %s is complete already: there is nothing to resume.' % output)
    if output.exists():
        if aside.exists() and _end_ns(aside) > _end_ns(output):
            shutil.rmtree(output)
        else:
            shutil.rmtree(aside, ignore_errors=True)
            output.rename(aside)
    return aside if aside.exists() else None


def _end_ns(bag: Path) -> int:
    """Return the receive time of the last readable message of a bag (0 if none)."""
    with BagReader(bag) as reader:
        return max((m.timestamp_ns for m in reader.messages(list(reader.topics), views=True)),
                   default=0)


def _refuse_unfinished(output: Path, force: bool) -> None:
    """Refuse an existing OUTPUT unless forced; an unfinished one can be resumed."""
    if output.is_dir() and storage_files(output) and not is_complete(output) and not force:
        raise BagError('Output %s is the unfinished output of an interrupted run: pass '
                       '--resume to go on from where it stopped, or --force to start over.'
                       % output)
    refuse_existing(output, force)


def segment_bag(input_path: Path, output_path: Path, model: Optional[str] = None,
                params_file: Optional[Path] = None, topics: Optional[Sequence[str]] = None,
                force: bool = False, namespace: Optional[str] = None, overlay: bool = False,
                storage: str = 'mcap', progress: bool = True,
                jobs: int = DEFAULT_JOBS, resume: bool = False) -> Tuple[int, List[str]]:
    """
    Write OUTPUT: INPUT's messages plus the node's outputs for every frame of ``topics``.

    ``jobs`` frames are segmented at once, each engine with ``num_threads // jobs`` inference
    threads (at least one); the output is the same for any ``jobs``. With ``resume``, the
    frames an interrupted run left in OUTPUT are kept and the others segmented. Returns the
    number of frames segmented (kept ones included) and the problems of the frames that were
    skipped in this run.
    """
    if jobs < 1:
        raise ConfigurationError('--jobs must be at least 1, got %d.' % jobs)
    values = load_parameters(params_file, {'model': model} if model else None)
    if Path(input_path).resolve() == Path(output_path).resolve():
        raise BagError('Output %s is the input: name another folder.' % output_path)
    if not resume:
        _refuse_unfinished(output_path, force)
    with ExitStack() as stack:
        reader = stack.enter_context(open_bag(NAME, input_path))
        chosen = _choose_topics(reader, topics)
        segmenters = [create_segmenter(values.get, RunningMode.IMAGE,
                                       max(1, values['num_threads'] // jobs))
                      for _ in range(jobs)]
        cameras = _cameras(reader, chosen, namespace, segmenters[0].labels, values, overlay)
        labels = serialize_message(String(data=labels_yaml(
            model_name(values.get), values['display_names_locale'], segmenters[0].labels,
            segmenters[0].display_names, values['output_confidence_masks'])))
        outputs: Dict[str, str] = {}
        for camera in cameras.values():
            outputs.update((name, IMAGE_TYPE) for name in [camera.category, camera.overlay] +
                           [t for _, t in camera.confidences] if name)
            outputs[camera.labels] = 'std_msgs/msg/String'
        aside = _interrupted_run(output_path) if resume else None
        previous = stack.enter_context(open_bag(NAME, aside)) if aside else None
        kept, resume_ns = _kept(previous, reader, outputs, cameras) if previous else ({}, None)
        storage = previous.storage if previous else storage
        work = _Segmentation(reader, segmenters, values)
        skipped: List[str] = []
        done = sum(kept.get(_first_output(camera), 0) for camera in cameras.values())
        for camera in cameras.values():
            camera.labels_written = kept.get(camera.topic, 0) > 0

        def create() -> BagWriter:
            writer = BagWriter(output_path, storage, force, in_place=True)
            for topic, connections in reader.connections.items():
                writer.add_topic(topic, reader.topics[topic], like=connections[0])
            for name, msgtype in outputs.items():
                writer.add_topic(name, msgtype, [_LATCHED if msgtype != IMAGE_TYPE
                                                 else _RELIABLE])
            if previous is not None:  # what the interrupted run finished, as it stored it
                for message in previous.messages(list(previous.topics), views=True):
                    if message.timestamp_ns >= resume_ns:
                        break
                    writer.write_raw(message.topic, message.timestamp_ns, message.raw)
            return writer

        def decoded() -> Iterator[Tuple[BagMessage, Union[_Frame, str, None]]]:
            for message in reader.messages(list(reader.topics), resume_ns, views=True):
                yield message, work.decode(message) if message.topic in cameras else None
        store = _WriterThread(output_path, create)
        frames = _ahead(decoded(), _AHEAD)
        bar = tqdm(total=reader.count(chosen), unit='frame', desc=NAME, disable=not progress,
                   dynamic_ncols=True, initial=sum(kept.get(t, 0) for t in chosen))
        # Messages in input order, each with the labels message to store after it (the
        # camera's first frame) and its outcome: None (not a frame), a problem, or a future.
        window: Deque[Tuple[BagMessage, Optional[bytes], Any]] = collections.deque()
        segmenting = 0  # futures in the window

        def store_ready(limit: int) -> None:
            """Store the window's head while it is ready or more than ``limit`` frames wait."""
            nonlocal segmenting, done
            while window:
                message, labels_first, outcome = window[0]
                if isinstance(outcome, Future):
                    if segmenting <= limit and not outcome.done():
                        return
                    outcome = outcome.result()
                    segmenting -= 1
                window.popleft()
                store.put(message.topic, message.timestamp_ns, message.raw)
                if labels_first is not None:
                    store.put(cameras[message.topic].labels, message.timestamp_ns, labels_first)
                if outcome is None:
                    continue
                if isinstance(outcome, str):
                    skipped.append(outcome)
                    bar.write('%s: skipped: %s' % (NAME, outcome), file=sys.stderr)
                else:
                    for topic, parts in outcome:
                        store.put(topic, message.timestamp_ns, *parts)
                    done += 1
                bar.update()

        complete = interrupted = False
        try:
            for message, frame in frames:
                labels_first = outcome = None
                if frame is not None:
                    camera = cameras[message.topic]
                    if not camera.labels_written:
                        labels_first, camera.labels_written = labels, True
                    outcome = frame if isinstance(frame, str) else work.submit(
                        camera, message, frame)
                    segmenting += isinstance(outcome, Future)
                window.append((message, labels_first, outcome))
                store_ready(jobs)
            store_ready(0)
            complete = True
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            frames.close()
            work.close()
            bar.close()
            store.finish(complete, keep=interrupted)
            if interrupted:
                print('%s: stopped; %s holds the frames segmented so far: run the same command '
                      'with --resume to go on from there.' % (NAME, output_path),
                      file=sys.stderr)
    if aside is not None:
        shutil.rmtree(aside)
    return done, skipped


def _first_output(camera: _Camera) -> Optional[str]:
    """Return the output topic a segmented frame of ``camera`` is counted on."""
    return camera.category or next((t for _, t in camera.confidences), camera.overlay)


def _kept(previous: BagReader, reader: BagReader, outputs: Dict[str, str],
          cameras: Dict[str, _Camera]) -> Tuple[Dict[str, int], Optional[int]]:
    """
    Return what an interrupted run finished: messages per topic, and where to go on.

    Messages are stored in input order, each frame followed by its outputs at its receive
    time, and a bag cut short holds what was stored first: every message received before
    the last one stored is complete with its outputs. Those are kept, the rest done again.
    """
    planned = {**reader.topics, **outputs}
    other = sorted(t for t, kind in previous.topics.items() if planned.get(t) != kind)
    if other:
        raise BagError('Bag %s was written with other topics or outputs (%s): run without '
                       '--resume.' % (previous.path, ', '.join(other)))
    times = [(m.topic, m.timestamp_ns) for m in previous.messages(list(previous.topics),
                                                                  views=True)]
    if not times:
        return {}, None
    resume_ns = times[-1][1]
    return collections.Counter(t for t, stamp in times if stamp < resume_ns), resume_ns


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
    parser.add_argument('--resume', action='store_true',
                        help='go on with the unfinished OUTPUT of an interrupted run')
    parser.add_argument('--jobs', type=int, default=DEFAULT_JOBS,
                        help='frames segmented at once, each engine with num_threads // jobs '
                        'inference threads (default: one per CPU, at most 4, here %d)'
                        % DEFAULT_JOBS)
    args = parser.parse_args(argv)
    keep_freed_memory()

    def body() -> int:
        done, skipped = segment_bag(args.input, args.output, args.model, args.params_file,
                                    args.topics, args.force, args.output_namespace,
                                    args.overlay, args.storage, jobs=args.jobs,
                                    resume=args.resume)
        print('%s: segmented %d frames%s; wrote %s' % (
            NAME, done, ', skipped %d that did not decode' % len(skipped) if skipped else '',
            args.output))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())

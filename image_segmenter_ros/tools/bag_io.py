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
rosbag2 files (sqlite3 or mcap) in and out, holding rclpy messages as real CDR bytes.

Reading and writing go through the pure-Python ``rosbags`` library, messages through rclpy's
own serialization, so a bag written here plays in ``ros2 bag`` and the node sees exactly the
messages a recording would give it. A bag is written under a temporary name and renamed when
complete: an interrupted or failed run never leaves something that looks like a finished bag.
"""

from dataclasses import dataclass
import heapq
import importlib
from io import BytesIO
import mmap
from pathlib import Path
import shutil
import struct
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union
import zlib

from rclpy.duration import Duration
from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile,
                       QoSReliabilityPolicy)
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import ChunkInfo, McapReader, McapWriter, Msg, msgsrc
from rosbags.typesys import get_typestore, Stores

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
_TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


# Messages at least this large (camera frames, masks) skip rosbags' in-memory chunking.
_DIRECT_BYTES = 64 * 1024
_CHUNK_HEADER = struct.Struct('<BQQQQIIQ')  # op, length, start, end, size, crc, '', size
_MESSAGE_HEADER = struct.Struct('<BQHIQQ')  # op, length, channel, sequence, log/publish time
_INDEX_ENTRY = struct.Struct('<QQ')
_RECORD = struct.Struct('<BQ')  # op, length
_MESSAGE_START = struct.Struct('<HIQ')  # channel, sequence, log time (then publish time)


def _mapped_chunk(chunk: ChunkInfo, data: memoryview, channels: Dict[int, Connection],
                  start: int, stop: int) -> Iterator[Msg]:
    """Yield the messages of an uncompressed chunk in time order, as views of ``data``."""
    yield Msg(chunk.message_start_time, 0, None, None)  # heapq.merge reads no further yet
    begin = chunk.chunk_start_offset + 9 + 40  # op, length, times, size, crc, '', size
    records = data[begin:begin + chunk.uncompressed_size]
    (crc,) = struct.unpack_from('<I', data, chunk.chunk_start_offset + 9 + 24)
    if len(records) != chunk.uncompressed_size or (crc and zlib.crc32(records) != crc):
        raise ReaderError('Chunk at offset %d is truncated or corrupt.' % chunk.chunk_start_offset)
    messages = []
    offset = 0
    while offset < len(records):
        op, length = _RECORD.unpack_from(records, offset)
        offset += _RECORD.size
        if offset + length > len(records) or (op == 0x05 and length < 22):
            raise ReaderError('Invalid record in the chunk at offset %d.'
                              % chunk.chunk_start_offset)
        if op == 0x05:
            channel, _, log_time = _MESSAGE_START.unpack_from(records, offset)
            if start <= log_time < stop and channel in channels:
                messages.append(Msg(log_time, chunk.chunk_start_offset, channels[channel],
                                    records[offset + 22:offset + length]))
        offset += length
    yield from sorted(messages, key=lambda message: message.timestamp)


class _MappedMcapReader(McapReader):
    """
    rosbags' MCAP storage reader, minus the copies of every message.

    rosbags reads each chunk into memory and copies each message out of it twice; for camera
    frames that costs more than decoding them. Here the file is memory-mapped, and messages
    of uncompressed chunks are views of it (the mapping lives as long as any view does).
    Compressed chunks and files without a chunk index are read by rosbags as before.
    """

    def open(self) -> None:  # noqa: A003 - rosbags' name
        super().open()
        self._map = memoryview(mmap.mmap(self.bio.fileno(), 0, access=mmap.ACCESS_READ))

    def close(self) -> None:
        self._map = None
        super().close()

    def messages(self, connections: Sequence[Connection], start: Optional[int] = None,
                 stop: Optional[int] = None) -> Iterator[Any]:
        if not self.chunks:
            yield from super().messages(connections, start, stop)
            return
        channels = {connection.id: connection for connection in connections}
        sources = []
        for chunk in self.chunks:
            if ((start is not None and start > chunk.message_end_time) or
                    (stop is not None and chunk.message_start_time >= stop) or
                    not any(chunk.channel_count.get(cid, 0) for cid in channels)):
                continue
            first = chunk.message_start_time if start is None else start
            end = chunk.message_end_time + 1 if stop is None else stop
            sources.append(msgsrc(chunk, channels, first, end, self.bio) if chunk.compression
                           else _mapped_chunk(chunk, self._map, channels, first, end))
        for timestamp, offset, connection, data in heapq.merge(*sources):
            if offset:
                yield connection, timestamp, data


class _DirectMcapWriter(McapWriter):
    """
    rosbags' MCAP storage writer, minus four copies of every large message.

    rosbags builds each message record in a buffer, copies it into the chunk's buffer, copies
    that out and into the chunk record before the file sees it: for megabyte-sized images
    these copies cost more than segmenting. A large message goes to the file at once here,
    in an uncompressed chunk of its own with the same index records rosbags writes; small
    messages are chunked together by rosbags as before. Readers see an ordinary MCAP file.
    """

    def write(self, connection: Connection, timestamp: int, data: Any) -> None:
        """Store a message given as bytes, or as a tuple of consecutive byte buffers."""
        parts = data if isinstance(data, tuple) else (data,)
        size = sum(len(part) for part in parts)
        if size < _DIRECT_BYTES or self.compression:
            super().write(connection, timestamp, b''.join(parts))
            return
        if self.chunk.bio.tell():  # pending small messages, schemas and channels first
            self.close_chunk()
        records = _MESSAGE_HEADER.size + size
        chunk_start = self.bio.tell()
        self.bio.write(_CHUNK_HEADER.pack(0x06, _CHUNK_HEADER.size - 9 + records, timestamp,
                                          timestamp, records, 0, 0, records))
        self.bio.write(_MESSAGE_HEADER.pack(0x05, _MESSAGE_HEADER.size - 9 + size,
                                            connection.id, 0, timestamp, timestamp))
        for part in parts:
            self.bio.write(part)
        chunk_end = self.bio.tell()
        message_index = struct.pack('<QHI', 6 + _INDEX_ENTRY.size, connection.id,
                                    _INDEX_ENTRY.size)
        self.bio.write(b'\x07' + message_index + _INDEX_ENTRY.pack(timestamp, 0))
        index = BytesIO()  # the chunk index entry of the summary, as close_chunk makes it
        index.write(struct.pack('<QQQQIHQQIQQ', timestamp, timestamp, chunk_start,
                                chunk_end - chunk_start, 10, connection.id, chunk_end,
                                self.bio.tell() - chunk_end, 0, records, records))
        self.chunks.append(index)
        self.message_start_time = min(timestamp, self.message_start_time)
        self.message_end_time = max(timestamp, self.message_end_time)
        self.channel_stats[connection.id] += 1


class _DirectoryReader(DirectoryReader):
    """The rosbags reader of bag folders, with MCAP files read by _MappedMcapReader."""

    STORAGE_PLUGINS = {**DirectoryReader.STORAGE_PLUGINS, 'mcap': _MappedMcapReader}


class _Reader(Reader):
    """The rosbags reader, with MCAP files read by _MappedMcapReader."""

    STORAGE_PLUGINS = {**Reader.STORAGE_PLUGINS, 'dir': _DirectoryReader,
                       '.mcap': _MappedMcapReader}


class _Writer(Writer):
    """The rosbags writer, with MCAP files written by _DirectMcapWriter."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _DirectMcapWriter}


class BagError(Exception):
    """A bag that cannot be used; the message names the bag (and topic and message index)."""


class DecodeError(BagError):
    """One message that does not decode; tools count and skip it."""


def message_class(msgtype: str) -> type:
    """Return the rclpy class of a rosbag2 type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module('%s.%s' % (package, kind)), name)


def qos_to_bag(profile: QoSProfile) -> Qos:
    """Describe an rclpy QoS profile the way rosbag2 stores offered QoS profiles."""
    def time(duration: Duration) -> QosTime:
        sec, nsec = divmod(duration.nanoseconds, 10**9)
        return QosTime(sec, nsec)
    return Qos(QosHistory(profile.history.value), profile.depth,
               QosReliability(profile.reliability.value), QosDurability(profile.durability.value),
               time(profile.deadline), time(profile.lifespan),
               QosLiveliness(profile.liveliness.value), time(profile.liveliness_lease_duration),
               profile.avoid_ros_namespace_conventions)


def qos_from_bag(profiles: Sequence[Qos], depth: int = 10) -> QoSProfile:
    """
    Choose a publisher profile for recorded topics.

    Always reliable, which serves reliable and best-effort subscribers alike (the node's
    best-effort camera input as well as a test's reliable one); transient local only if
    every recorded publisher was (latched topics such as ``labels``).
    """
    latched = bool(profiles) and all(
        p.durability == QosDurability.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.TRANSIENT_LOCAL if latched
                      else QoSDurabilityPolicy.VOLATILE)


@dataclass
class BagMessage:
    """One stored message: topic, its index on that topic (from 0), receive time, CDR bytes."""

    topic: str
    index: int
    timestamp_ns: int
    raw: Union[bytes, memoryview]  # a view of the file only if asked for
    msgtype: str


class BagReader:
    """An open rosbag2 of either storage (directory, ``.mcap`` or ``.db3``), detected."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._reader = _Reader(self.path)
            self._reader.open()
        except (FileNotFoundError, ReaderError, OSError, ValueError, KeyError) as error:
            raise BagError('Cannot open bag %s: %s' % (self.path, error)) from None
        self.topics: Dict[str, str] = {}
        self.connections: Dict[str, List[Connection]] = {}
        for connection in self._reader.connections:
            self.topics[connection.topic] = connection.msgtype
            self.connections.setdefault(connection.topic, []).append(connection)
        self._classes: Dict[str, type] = {}

    @property
    def storage(self) -> str:
        """Return ``mcap`` or ``sqlite3``."""
        files = [self.path] if self.path.is_file() else list(self.path.iterdir())
        return 'mcap' if any(f.suffix == '.mcap' for f in files) else 'sqlite3'

    def image_topics(self) -> List[str]:
        """Return the topics of sensor_msgs/Image or CompressedImage, sorted."""
        return sorted(t for t, msgtype in self.topics.items() if msgtype in IMAGE_TYPES)

    def check_topics(self, topics: Sequence[str]) -> None:
        """Refuse topics the bag does not have, listing those it has."""
        missing = [topic for topic in topics if topic not in self.topics]
        if missing:
            raise BagError('Bag %s has no topic %s; its topics: %s.' % (
                self.path, ', '.join(missing),
                ', '.join('%s (%s)' % item for item in sorted(self.topics.items())) or 'none'))

    def count(self, topics: Sequence[str]) -> int:
        """Return how many messages the bag holds on ``topics``."""
        return sum(c.msgcount for topic in topics for c in self.connections.get(topic, []))

    def qos(self, topic: str) -> List[Qos]:
        """Return the QoS profiles the recorded publishers of ``topic`` offered."""
        return [p for c in self.connections[topic] for p in c.ext.offered_qos_profiles]

    def messages(self, topics: Sequence[str], start_ns: Optional[int] = None,
                 views: bool = False) -> Iterator[BagMessage]:
        """
        Yield the messages of ``topics`` in receive-time order.

        With ``views``, messages of MCAP files may be memoryviews of the file instead of bytes:
        no copy, for callers that only look at them or write them elsewhere.
        """
        connections = [c for topic in topics for c in self.connections[topic]]
        indices = dict.fromkeys(topics, 0)
        try:
            for connection, timestamp, raw in self._reader.messages(connections, start=start_ns):
                yield BagMessage(connection.topic, indices[connection.topic], timestamp,
                                 raw if views else bytes(raw), connection.msgtype)
                indices[connection.topic] += 1
        except (ReaderError, OSError, ValueError, KeyError, EOFError, struct.error) as error:
            raise BagError('Cannot read bag %s after message %d of %s: %s' % (
                self.path, max(indices.values(), default=0), ', '.join(topics), error)) from None

    def decode(self, message: BagMessage) -> Any:
        """Return the rclpy message; DecodeError names the bag, topic and message index."""
        cls = self._classes.get(message.msgtype)
        if cls is None:
            cls = self._classes[message.msgtype] = message_class(message.msgtype)
        try:
            return deserialize_message(bytes(message.raw), cls)
        except RuntimeError as error:
            raise DecodeError(describe(self.path, message, error)) from None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def describe(path: Path, message: BagMessage, error: Any) -> str:
    """Word a problem with one message: bag, topic, index."""
    return 'Bag %s, topic %s, message %d: %s' % (
        path, message.topic, message.index, str(error).strip().splitlines()[0])


def refuse_existing(path: Path, force: bool) -> None:
    """Refuse to replace an existing output unless forced; the old one goes at the end."""
    if Path(path).exists() and not force:
        raise BagError('Output %s exists already; pass --force to overwrite it.' % path)


class BagWriter:
    """
    A rosbag2 being written under a temporary name, renamed to ``path`` by ``close()``.

    ``abort()`` (or leaving the ``with`` block with an exception) removes it, so a failed run
    leaves no bag; with ``force`` an existing bag at ``path`` is replaced only at the end.
    """

    def __init__(self, path: Path, storage: str = 'mcap', force: bool = False):
        self.path = Path(path)
        refuse_existing(self.path, force)
        self._staging = self.path.parent / ('.%s.partial' % self.path.name)
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging.mkdir(parents=True)
        # Inside the staging folder the bag already has its final name, so the storage file
        # and metadata.yaml need no rewriting when the folder is moved.
        self._writer = _Writer(self._staging / self.path.name, version=Writer.VERSION_LATEST,
                               storage_plugin=STORAGES[storage])
        self._writer.open()
        self._mcap = storage == 'mcap'
        self._connections: Dict[str, Connection] = {}

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = (),
                  like: Optional[Connection] = None) -> None:
        """Declare a topic; ``like`` copies a read connection's definition and QoS."""
        if topic in self._connections:
            return
        if like is not None and like.msgdef.data and like.digest:
            connection = self._writer.add_connection(
                topic, msgtype, msgdef=like.msgdef.data, rihs01=like.digest,
                offered_qos_profiles=like.ext.offered_qos_profiles)
        else:
            try:
                connection = self._writer.add_connection(topic, msgtype, typestore=_TYPESTORE,
                                                         offered_qos_profiles=list(qos))
            except (KeyError, WriterError) as error:
                raise BagError('Cannot record %s: message type %s is unknown (%s).'
                               % (topic, msgtype, error)) from None
        self._connections[topic] = connection

    def write_raw(self, topic: str, timestamp_ns: int, *parts: Any) -> None:
        """
        Store CDR bytes, whole or in consecutive pieces (such as a header and pixels).

        MCAP files get the pieces written one after the other, never joined in memory.
        """
        data = parts[0] if len(parts) == 1 else parts if self._mcap else b''.join(parts)
        self._writer.write(self._connections[topic], timestamp_ns, data)

    def write(self, topic: str, timestamp_ns: int, message: Any) -> None:
        """Serialize an rclpy message with rclpy (real CDR) and store it."""
        self.write_raw(topic, timestamp_ns, serialize_message(message))

    def close(self) -> None:
        """Finish the bag and give it its final name."""
        self._writer.close()
        if self.path.exists():
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        (self._staging / self.path.name).rename(self.path)
        self._staging.rmdir()

    def abort(self) -> None:
        """Drop everything written so far."""
        shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

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
messages a recording would give it. A bag is complete once its ``metadata.yaml`` is written,
last: a bag without it was never closed. Recordings are written in place and flushed every
half second, so a crash loses at most that; other bags are written under a temporary name and
renamed when complete.

A bag cut short (never closed, or its file truncated) is still read: every complete message
up to the cut, found by walking the MCAP records (the summary at its end may be missing) or
from the sqlite3 rows committed (a journal left behind is rolled back first).
"""

from collections import defaultdict
from dataclasses import dataclass
import heapq
import importlib
from io import BytesIO
import mmap
import os
from pathlib import Path
import shutil
import sqlite3
import struct
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union
import zlib

import apsw
from rclpy.duration import Duration
from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile,
                       QoSReliabilityPolicy)
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import (Connection, ConnectionExtRosbag2, Qos, QosDurability,
                                QosHistory, QosLiveliness, QosReliability, QosTime)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.metadata import ReaderMetadata
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import (Channel, ChunkInfo, decompress, get_msgdef, get_qos,
                                          McapReader, McapWriter, Msg, msgsrc, read_bytes,
                                          read_string, Schema)
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader, Sqlite3Writer
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
    # A chunk cut short is read up to its last complete record: its checksum is of the whole.
    size, crc = struct.unpack_from('<QI', data, chunk.chunk_start_offset + 9 + 16)
    if len(records) != chunk.uncompressed_size or (
            crc and size == len(records) and zlib.crc32(records) != crc):
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


class _RecoveredMcapReader(_MappedMcapReader):
    """
    An MCAP file read without its summary: complete chunks found by walking the records.

    A file that was never closed (or was truncated) ends anywhere, possibly inside a chunk.
    Every chunk whose records are all there is read whole; of the chunk cut short, the
    message records that end before the cut (if it is uncompressed); nothing after the first
    record that is cut or invalid. ``cut_at`` is that record's offset, None if the file
    reached its data end.
    """

    def _open(self) -> None:
        data = memoryview(mmap.mmap(self.bio.fileno(), 0, access=mmap.ACCESS_READ)) \
            if os.fstat(self.bio.fileno()).st_size else memoryview(b'')
        if bytes(data[:8]) != b'\x89MCAP0\r\n' or len(data) < 17 or data[8] != 0x01:
            raise ReaderError('not an MCAP file, or cut before its first record.')
        (length,) = struct.unpack_from('<Q', data, 9)
        offset = self.data_start = 17 + length
        self.cut_at: Optional[int] = None
        self.size = len(data)
        counts: Dict[int, int] = defaultdict(int)
        while True:
            if offset + _RECORD.size > len(data):  # the file ends here, or in the header
                self.cut_at = None if offset == len(data) else (
                    offset if offset < len(data) else 8)
                break
            op, length = _RECORD.unpack_from(data, offset)
            if op in (0x0F, 0x02):  # data end, footer: the summary follows, all is read
                break
            end = offset + _RECORD.size + length
            if op == 0x06:
                chunk, complete = self._chunk(data, offset, end)
                if chunk is not None:
                    self.chunks.append(chunk)
                    for channel, count in chunk.channel_count.items():
                        counts[channel] += count
                if not complete:
                    self.cut_at = offset
                    break
            elif end > len(data) or op not in _KNOWN_OPS or not self._record(
                    op, data[offset + _RECORD.size:end]):
                self.cut_at = offset
                break
            offset = end
        self.data_end = offset
        start = min((chunk.message_start_time for chunk in self.chunks), default=0)
        stop = max((chunk.message_end_time for chunk in self.chunks), default=0)
        total = sum(counts.values())
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in self.connections]
        self.metadata = ReaderMetadata(stop - start + 1 if total else 0,
                                       start if total else 2**63 - 1, stop + 1 if total else 0,
                                       total, None, None, None, None)

    def _chunk(self, data: memoryview, offset: int,
               end: int) -> Tuple[Optional[ChunkInfo], bool]:
        """
        Return the readable part of the chunk at ``offset`` and whether it is complete.

        The part is None when it holds no message.
        """
        head = offset + _RECORD.size
        if head + 28 + 4 > len(data):
            return None, False
        size, crc = struct.unpack_from('<QI', data, head + 16)
        (name_length,) = struct.unpack_from('<I', data, head + 28)
        begin = head + 32 + name_length + 8
        if begin > min(end, len(data)):
            return None, False
        compression = bytes(data[head + 32:begin - 8]).decode(errors='replace')
        (stored,) = struct.unpack_from('<Q', data, begin - 8)
        complete = end <= len(data) and begin + stored == end
        if compression:  # only a whole compressed chunk can be read
            if not complete:
                return None, False
            try:
                records = memoryview(decompress(bytes(data[begin:end]), compression, size, crc))
            except (ReaderError, ValueError, RuntimeError, OSError):
                return None, False
        else:
            records = data[begin:min(begin + stored, end, len(data))]
            complete = complete and size == stored
            if complete and crc and zlib.crc32(records) != crc:
                return None, False
        counts: Dict[int, int] = defaultdict(int)
        times: List[int] = []
        position = 0
        while position + _RECORD.size <= len(records):
            op, length = _RECORD.unpack_from(records, position)
            body = records[position + _RECORD.size:position + _RECORD.size + length]
            if len(body) < length or (op == 0x05 and length < 22) or (
                    op != 0x05 and not self._record(op, body)):
                break
            if op == 0x05:
                channel, _, log_time = _MESSAGE_START.unpack_from(body)
                counts[channel] += 1
                times.append(log_time)
            position += _RECORD.size + length
        complete = complete and position == len(records)
        if not counts or (compression and not complete):
            return None, complete
        return ChunkInfo(min(times), max(times), offset, end - offset, {}, 0, compression,
                         stored, size if compression else position, dict(counts)), complete

    def _record(self, op: int, body: memoryview) -> bool:
        """Take in a schema or channel record; False if it is invalid."""
        if op not in (0x03, 0x04):
            return True
        record = BytesIO(body)
        try:
            (key,) = struct.unpack('<H', record.read(2))
            if op == 0x03:
                self.schemas[key] = Schema(key, read_string(record), read_string(record),
                                           read_string(record))
                return True
            (schema_id,) = struct.unpack('<H', record.read(2))
            schema = self.schemas.get(schema_id)
            channel = self.channels[key] = Channel(
                key, schema.name if schema else '__schemaless__', read_string(record),
                read_string(record), read_bytes(record))
        except (ReaderError, struct.error, UnicodeDecodeError):
            return False
        if all(c.id != key for c in self.connections):
            self.connections.append(Connection(
                key, channel.topic, channel.schema, get_msgdef(schema), '', 0,
                ConnectionExtRosbag2(channel.message_encoding, get_qos(channel.metadata)), self))
        return True


# Schema, channel, chunk, message index, attachment, metadata and the summary's records. Messages
# outside chunks (which no rosbag2 writer makes) end the readable part.
_KNOWN_OPS = {0x03, 0x04, 0x06, 0x07, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E}


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

    def flush(self, sync: bool) -> None:
        """Write the pending chunk and hand everything to the system (and disk if ``sync``)."""
        if self.chunk.bio.tell():
            self.close_chunk()
        self.bio.flush()
        if sync:
            os.fsync(self.bio.fileno())


class _Sqlite3Writer(Sqlite3Writer):
    """rosbags' sqlite3 storage writer, committing when flushed instead of only at the end."""

    def flush(self, sync: bool) -> None:
        """Commit the rows written so far: a crash later rolls back to here."""
        self.conn.commit()
        if not sync:  # later commits leave the disk to the system: only a power cut can tell
            self.conn.execute('PRAGMA synchronous = OFF')


class _DirectoryReader(DirectoryReader):
    """The rosbags reader of bag folders, with MCAP files read by _MappedMcapReader."""

    STORAGE_PLUGINS = {**DirectoryReader.STORAGE_PLUGINS, 'mcap': _MappedMcapReader}


class _Reader(Reader):
    """The rosbags reader, with MCAP files read by _MappedMcapReader."""

    STORAGE_PLUGINS = {**Reader.STORAGE_PLUGINS, 'dir': _DirectoryReader,
                       '.mcap': _MappedMcapReader}


class _Writer(Writer):
    """The rosbags writer, with MCAP files written by _DirectMcapWriter."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _DirectMcapWriter,
                       StoragePlugin.SQLITE3: _Sqlite3Writer}


class _RecoveringReader(Reader):
    """The rosbags reader of one storage file, an MCAP file read without its summary."""

    STORAGE_PLUGINS = {'.mcap': _RecoveredMcapReader, '.db3': Sqlite3Reader}


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


def storage_files(path: Path) -> List[Path]:
    """Return the storage files of a bag: the file itself, or those in its folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(f for f in path.iterdir() if f.suffix in ('.mcap', '.db3')) \
        if path.is_dir() else []


def is_complete(path: Path) -> bool:
    """Return whether a bag folder was closed: its metadata.yaml is written last."""
    return (Path(path) / 'metadata.yaml').is_file()


def _roll_back(database: Path) -> bool:
    """
    Bring a sqlite3 file left by a crash to its last commit; return whether there was work.

    The journal (or write-ahead log) beside it holds what the crash left unfinished;
    sqlite3 rolls it back (or in) when the file is next opened for writing.
    """
    leftovers = [database.with_name(database.name + end) for end in ('-journal', '-wal')]
    if not any(f.exists() for f in leftovers):
        return False
    connection = sqlite3.connect(str(database))
    try:
        connection.execute('SELECT count(*) FROM sqlite_master').fetchall()
        if database.with_name(database.name + '-wal').exists():
            connection.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    finally:
        connection.close()
    return True


class BagReader:
    """
    An open rosbag2 of either storage (directory, ``.mcap`` or ``.db3``), detected.

    A bag cut short is read up to the cut; ``cut_short`` then says so in one sentence (with
    the number of complete messages), and is None for a complete bag.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.cut_short: Optional[str] = None
        try:
            self._reader = self._open()
        except (FileNotFoundError, ReaderError, OSError, ValueError, KeyError,
                sqlite3.Error, apsw.Error) as error:
            raise BagError('Cannot open bag %s: %s' % (self.path, error)) from None
        self.topics: Dict[str, str] = {}
        self.connections: Dict[str, List[Connection]] = {}
        for connection in self._reader.connections:
            self.topics[connection.topic] = connection.msgtype
            self.connections.setdefault(connection.topic, []).append(connection)
        self._classes: Dict[str, type] = {}

    def _open(self) -> Reader:
        """Open the bag as it is; if it is cut short, its storage file up to the cut."""
        if not self.path.exists():
            raise FileNotFoundError('no such file or folder')
        files = storage_files(self.path)
        reasons = []
        if self.path.is_dir() and not is_complete(self.path):
            reasons.append('never closed: no metadata.yaml')
        if any(_roll_back(f) for f in files if f.suffix == '.db3'):
            reasons.append('its unfinished sqlite3 transaction was rolled back')
        failure = None
        if not reasons:
            reader = _Reader(self.path)
            try:
                reader.open()
                return reader
            except (ReaderError, OSError, ValueError, KeyError, struct.error) as error:
                if len(files) != 1:
                    raise
                failure = str(error).rstrip('.')
        if len(files) != 1:
            raise ReaderError('%s, and it has %s storage file (.mcap or .db3)' % (
                reasons[0], 'no' if not files else 'more than one'))
        reader = _RecoveringReader(files[0])
        reader.open()
        storage = reader.storage
        if isinstance(storage, _RecoveredMcapReader):
            if storage.cut_at is not None:
                reasons.append('%s ends in a record cut at byte %d of %d' % (
                    files[0].name, storage.cut_at, storage.size))
            elif failure:
                reasons.append('%s has no valid summary or footer' % files[0].name)
        elif failure:
            reasons.append(failure)
        self.cut_short = 'Bag %s was cut short (%s): reading its %d complete messages.' % (
            self.path, '; '.join(reasons), reader.message_count)
        return reader

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
        except (ReaderError, OSError, ValueError, KeyError, EOFError, struct.error,
                apsw.Error) as error:
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


def _remove(path: Path) -> None:
    """Remove a bag (folder or file) if there is one."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


class BagWriter:
    """
    A rosbag2 being written; complete once ``close()`` wrote its metadata.yaml.

    By default the bag is written under a temporary name and renamed to ``path`` by
    ``close()``; ``abort()`` (or leaving the ``with`` block with an exception) removes it, so
    a failed run leaves no bag, and with ``force`` an existing bag at ``path`` is replaced
    only at the end. ``in_place`` writes at ``path`` from the start instead (an existing bag
    is removed first), flushing every ``FLUSH_SECONDS``: a crash leaves an unfinished bag
    there that holds every message written until the last flush, read as a bag cut short.
    With ``sync`` each flush also waits for the disk, so a power cut loses no more.
    """

    FLUSH_SECONDS = 0.5

    def __init__(self, path: Path, storage: str = 'mcap', force: bool = False,
                 in_place: bool = False, sync: bool = False):
        self.path = Path(path)
        refuse_existing(self.path, force)
        self._staging = None if in_place else self.path.parent / ('.%s.partial' % self.path.name)
        if in_place:
            _remove(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging.mkdir(parents=True)
        # Inside the staging folder the bag already has its final name, so the storage file
        # and metadata.yaml need no rewriting when the folder is moved.
        self._writer = _Writer(self.path if in_place else self._staging / self.path.name,
                               version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._mcap = storage == 'mcap'
        self._connections: Dict[str, Connection] = {}
        self._flushed = time.monotonic()
        self._sync = sync

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = (),
                  like: Optional[Connection] = None) -> None:
        """Declare a topic; ``like`` copies a read connection's definition and QoS."""
        if topic in self._connections:
            return
        qos = list(qos) or (like.ext.offered_qos_profiles if like is not None else [])
        if like is not None and like.msgdef.data and like.digest:
            connection = self._writer.add_connection(
                topic, msgtype, msgdef=like.msgdef.data, rihs01=like.digest,
                offered_qos_profiles=like.ext.offered_qos_profiles)
        else:
            try:
                connection = self._writer.add_connection(topic, msgtype, typestore=_TYPESTORE,
                                                         offered_qos_profiles=qos)
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
        self.flush_if_due()

    def flush_if_due(self) -> None:
        """Flush a bag written in place if ``FLUSH_SECONDS`` passed since the last flush."""
        if self._staging is None and time.monotonic() - self._flushed >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Make everything written so far readable after a crash (on disk, committed)."""
        self._writer.storage.flush(self._sync)
        self._flushed = time.monotonic()

    def write(self, topic: str, timestamp_ns: int, message: Any) -> None:
        """Serialize an rclpy message with rclpy (real CDR) and store it."""
        self.write_raw(topic, timestamp_ns, serialize_message(message))

    def close(self) -> None:
        """Finish the bag (summary, metadata.yaml) and give it its final name."""
        self._writer.close()
        if self._staging is not None:
            _remove(self.path)
            (self._staging / self.path.name).rename(self.path)
            self._staging.rmdir()

    def leave_unfinished(self) -> None:
        """Flush and stop writing, leaving the bag unfinished (to be resumed or repaired)."""
        self.flush()
        self._writer.abort()

    def abort(self) -> None:
        """Drop everything written so far."""
        try:
            self._writer.abort()
        finally:
            shutil.rmtree(self.path if self._staging is None else self._staging,
                          ignore_errors=True)

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

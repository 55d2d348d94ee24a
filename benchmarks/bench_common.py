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


"""What every benchmark shares: real frames, quantiles, the machine, py-spy profiles."""

import datetime
import importlib.metadata
import os
from pathlib import Path
import platform
import shutil
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

# Shipped for large images over shared memory (see the file); the node benchmarks use it.
DDS_PROFILE = Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_images.xml'
VIDEO_DIR = Path(os.environ.get('IMAGE_SEGMENTER_ROS_VIDEO_DIR',
                                Path.home() / '.cache' / 'image_segmenter_ros' / 'videos'))


def read_frames(count: int) -> List[np.ndarray]:
    """Read ``count`` distinct RGB frames spread evenly over Megamind.avi."""
    path = VIDEO_DIR / 'Megamind.avi'
    if not path.exists():
        sys.exit('Sample video %s is missing: run `make videos` first.' % path)
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    wanted = set(np.linspace(0, total - 1, min(count, total)).astype(int).tolist())
    frames, index = [], 0
    while len(frames) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    if not frames:
        sys.exit('No frame could be read from %s.' % path)
    return frames


def resized(frames: Sequence[np.ndarray], size: Tuple[int, int]) -> List[np.ndarray]:
    """Return the frames stretched to (width, height), contiguous RGB uint8."""
    return [np.ascontiguousarray(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
            for frame in frames]


def real_frames(width: int, height: int, count: int = 16) -> List[np.ndarray]:
    """Return every 15th RGB frame of Megamind.avi from its start, at ``width`` x ``height``."""
    path = VIDEO_DIR / 'Megamind.avi'
    if not path.exists():
        sys.exit('Sample video %s is missing: run `make videos` first.' % path)
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 15 == 0:
            frames.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (width, height),
                                     interpolation=cv2.INTER_AREA))
        index += 1
    capture.release()
    if not frames:
        sys.exit('No frame could be read from %s.' % path)
    return frames


def ms(values: Sequence[float], quantile: float) -> float:
    """Return a quantile of durations in seconds, in milliseconds."""
    return float(np.quantile(np.asarray(values), quantile)) * 1e3


def machine_description() -> List[str]:
    """Date, CPU model, core count and library versions, one line each."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass

    def version(distribution: str) -> str:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return 'not installed'

    usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None
    return [
        'Date: %s' % datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
        'CPU: %s, %d logical cores (%s usable by this process)' % (
            cpu, os.cpu_count() or 0, usable if usable is not None else 'unknown'),
        'OS: %s %s' % (platform.system(), platform.release()),
        'Python %s, numpy %s, OpenCV %s, LiteRT (ai-edge-litert) %s, MediaPipe %s, '
        'rclpy %s (ROS 2 Jazzy wheels, Fast DDS)' % (
            platform.python_version(), np.__version__, cv2.__version__,
            version('ai-edge-litert'), version('mediapipe'), version('rclpy')),
    ]


def py_spy_prefix(output: Path, rate: int) -> Optional[List[str]]:
    """
    Return the command prefix that samples a program with py-spy into ``output``.

    Raw format (one line per distinct stack, with its sample count), every thread, without
    pausing the program; None when py-spy is not installed.
    """
    py_spy = shutil.which('py-spy') or str(Path(sys.executable).parent / 'py-spy')
    if not Path(py_spy).exists():
        return None
    return [py_spy, 'record', '--format', 'raw', '--rate', str(rate), '--threads',
            '--nonblocking', '-o', str(output), '--']


def function_name(frame: str) -> str:
    """``name (path/file.py:line)`` -> ``file.py:name``."""
    name, _, where = frame.partition(' (')
    return '%s:%s' % (Path(where.split(':')[0]).name, name) if where else name


def py_spy_stacks(text: str) -> Iterator[Tuple[str, List[str], int]]:
    """
    Yield (thread name, functions from the outermost, samples) for each line of a raw profile.

    py-spy names a thread on some of its lines only (``thread (tid): name``); the others get
    the name that the same thread id has elsewhere in the profile.
    """
    lines = []
    names: Dict[str, str] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(' ')
        if not count.isdigit() or ';' not in stack:
            continue
        thread, *frames = stack.split(';')
        tid, _, name = thread.partition(': ')
        if name:
            names[tid] = name
        lines.append((tid, frames, int(count)))
    for tid, frames, count in lines:
        yield names.get(tid, tid), [function_name(frame) for frame in frames], count


def use_dds_profile(path: Optional[Path]) -> None:
    """
    Give this process and the nodes it starts a Fast DDS XML profile (None: the default).

    Fast DDS reads it once, when a process creates its first participant: call it before.
    """
    for name in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        if path is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(Path(path).resolve())

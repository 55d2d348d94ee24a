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
Demo: a real video through the live node over DDS, as a bag replay test on a robot.

``python -m image_segmenter_ros.tools.demo`` (run by ``make demo``): turns Megamind.avi into a
rosbag2 (``make_sample_bag``), starts ``image_segmenter_node`` with the arguments a launch
file passes (VIDEO mode, reliable input, so every frame is segmented), replays the bag into it
at recorded speed (``replay_bag``), records the camera and the node's outputs (``record``),
renders ``<output>/demo.png`` (``render``) and prints latency and throughput. Then the same
with the multi-class and hair models (``--extra-models``, default deeplab_v3 and
hair_segmenter), into ``<output>/demo_<model>.png``; a model whose file is not installed is
named in one line and left out. DDS stays on the loopback interface, in a domain of its own.
"""

import argparse
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from .bag_io import BagReader
from .cli import run
from .make_sample_bag import make_sample_bag
from .render import render
from ..engine import RunningMode
from ..engine.model_catalog import ModelNotFoundError, resolve_model
from ..node.output_messages import CATEGORY_TOPIC, confidence_topics
from ..node.parameters import create_segmenter, load_parameters

NAMESPACE = '/camera'
CAMERA = NAMESPACE + '/image_raw'
CATEGORY = NAMESPACE + '/' + CATEGORY_TOPIC
CHECKOUT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_VIDEO = Path(os.environ.get(
    'IMAGE_SEGMENTER_ROS_VIDEO_DIR',
    Path.home() / '.cache' / 'image_segmenter_ros' / 'videos')) / 'Megamind.avi'
# Pictures made after the main one, and the class whose confidence each shows.
EXTRA_MODELS = {'deeplab_v3': 'person', 'hair_segmenter': 'hair'}


def use_demo_environment() -> Dict[str, str]:
    """
    Keep DDS on loopback, in a domain no other demo or test run shares, with large-image SHM.

    Set in this process (it looks at the graph too) and inherited by every step. The Fast DDS
    profile, unless one is set already, gives each process shared memory big enough for whole
    frames and masks.
    """
    profile = (os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')
               or os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE')
               or str(config_file('fastdds_large_images.xml')))
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                      ROS_DOMAIN_ID=os.environ.get('IMAGE_SEGMENTER_DEMO_DOMAIN_ID',
                                                   str(101 + os.getpid() % 60)),
                      FASTRTPS_DEFAULT_PROFILES_FILE=profile,
                      FASTDDS_DEFAULT_PROFILES_FILE=profile,
                      RCUTILS_LOGGING_BUFFERED_STREAM='0', PYTHONUNBUFFERED='1')
    os.environ.pop('ROS_LOCALHOST_ONLY', None)  # Humble's spelling; Jazzy warns with both
    return dict(os.environ)


def config_file(name: str) -> Path:
    """Find a file of config/ in this checkout or in the installed share folder."""
    for folder in (CHECKOUT_DIR / 'config',
                   Path(sys.prefix) / 'share' / 'image_segmenter_ros' / 'config'):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError('No file config/%s.' % name)


def tool(name: str) -> List[str]:
    """Return the command of one of this package's executables, next to this Python."""
    return [str(Path(sys.executable).parent / name)]


def wait_for_subscribers(topics: Sequence[str], env: Dict[str, str],
                         timeout: float = 30.0) -> None:
    """
    Wait until the recorder subscribes to the node's outputs.

    The node computes an output only while it has a subscriber, so frames replayed before it
    sees the recorder would be skipped (as they should be on a robot).
    """
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    node = rclpy.create_node('demo_graph_probe', context=context,
                             start_parameter_services=False)
    try:
        deadline = time.monotonic() + timeout
        while not all(node.count_subscribers(topic) for topic in topics):
            if time.monotonic() > deadline:
                raise TimeoutError('The recorder did not subscribe to %s.' % ', '.join(topics))
            time.sleep(0.05)
        time.sleep(0.5)  # the node's own view of the new subscriptions
    finally:
        node.destroy_node()
        context.try_shutdown()


def latency_summary(recording: Path) -> Dict[str, object]:
    """Measure latency (frame received -> mask received, same recorder) and throughput."""
    arrivals: Dict[str, Dict[tuple, int]] = {}
    with BagReader(recording) as reader:
        for message in reader.messages([CAMERA, CATEGORY]):
            header = reader.decode(message).header
            key = (header.stamp.sec, header.stamp.nanosec)
            arrivals.setdefault(message.topic, {})[key] = message.timestamp_ns
    frames, masks = arrivals.get(CAMERA, {}), arrivals.get(CATEGORY, {})
    latency = [(masks[k] - frames[k]) / 1e6 for k in masks if k in frames]
    span = (max(masks.values()) - min(masks.values())) / 1e9 if len(masks) > 1 else 0.0
    return {'frames': len(frames), 'masks': len(masks),
            'latency': np.percentile(latency, [50, 90, 100]) if latency else None,
            'fps': (len(masks) - 1) / span if span else 0.0}


def output_topics(params_file: Path, shown: Optional[str] = None) -> List[str]:
    """Return the category mask topic and one confidence topic (``shown``, else the last)."""
    with create_segmenter(load_parameters(params_file).get, RunningMode.IMAGE) as segmenter:
        labels = segmenter.labels
    index = labels.index(shown) if shown in labels else -1
    return [CATEGORY, NAMESPACE + '/' + confidence_topics(labels)[index]]


def stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15.0) -> None:
    """Stop a step that is still running: a signal, then a kill if it does not end."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_demo(video: Path, output: Path, model: str, frames: Optional[int], work: Path,
             extra_models: Sequence[str] = ()) -> int:
    """Make the main picture, then one per extra model; return the process exit code."""
    code = run_model(video, output / 'demo.png', model, frames, work)
    for extra in extra_models:
        params_file = config_file(extra + '.yaml')
        try:
            resolve_model(load_parameters(params_file)['model'])
        except ModelNotFoundError as error:
            print('\nNo %s picture: %s' % (extra, error))
            continue
        print()
        code = max(code, run_model(video, output / ('demo_%s.png' % extra), extra, frames,
                                   work / extra, EXTRA_MODELS.get(extra)))
    return code


def run_model(video: Path, picture: Path, model: str, frames: Optional[int], work: Path,
              shown: Optional[str] = None) -> int:
    """Run every step with one model, its confidence of ``shown``; return the exit code."""
    env = use_demo_environment()
    params_file = config_file(model + '.yaml')
    outputs = output_topics(params_file, shown)
    work.mkdir(parents=True, exist_ok=True)
    sample, recording = work / 'megamind_bag', work / 'megamind_recording'
    log_path = work / 'node.log'
    count = make_sample_bag(video, sample, frames=frames, topic=CAMERA, force=True)
    shutil.rmtree(recording, ignore_errors=True)
    recorder = None
    node = subprocess.Popen(tool('image_segmenter_node') + [
        '--ros-args', '--params-file', str(params_file), '-r', 'image:=' + CAMERA,
        '-r', '__ns:=' + NAMESPACE, '-p', 'running_mode:=VIDEO', '-p', 'queue_size:=100',
        '-p', 'qos_overrides.%s.subscription.reliability:=reliable' % CAMERA,
        '-p', 'qos_overrides.%s.subscription.depth:=100' % CAMERA] + [
        # A deep reliable history: a recorder busy writing a frame loses no mask.
        arg for topic in outputs for arg in (
            '-p', 'qos_overrides.%s.publisher.depth:=100' % topic)],
        env=env, stdout=log_path.open('w'), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30.0
        while 'Segmenting' not in log_path.read_text():
            if node.poll() is not None or time.monotonic() > deadline:
                print('The node did not start:\n' + log_path.read_text(), file=sys.stderr)
                return 1
            time.sleep(0.1)
        print('Node: ' + log_path.read_text().strip().splitlines()[-1])
        expected = count * (1 + len(outputs)) + 1  # camera, masks, labels
        recorder = subprocess.Popen(tool('record') + [
            str(recording), '--topics', CAMERA, *outputs, NAMESPACE + '/labels',
            '--count', str(expected), '--duration', str(count / 10.0 + 30.0)], env=env)
        wait_for_subscribers(outputs, env)
        started = time.monotonic()
        # Two subscribers, the node and the recorder: no frame goes unseen by either.
        subprocess.run(tool('replay_bag') + [str(sample), '--wait-for-subscribers', '30',
                                             '--subscribers', '2'], env=env, check=True)
        recorder.wait(timeout=count / 10.0 + 40.0)
        elapsed = time.monotonic() - started
    finally:
        if recorder is not None:
            stop(recorder)
        stop(node)
    picture.parent.mkdir(parents=True, exist_ok=True)
    render(recording, picture)
    summary = latency_summary(recording)
    print('\nReplayed %d frames of %s (720x528) through image_segmenter_node (%s, VIDEO mode) '
          'over DDS in %.1f s; recorded %d masks per output.'
          % (count, video.name, model, elapsed, summary['masks']))
    if summary['latency'] is not None:
        print('Latency, frame received -> category mask received: p50 %.1f ms, p90 %.1f ms, '
              'max %.1f ms; throughput %.1f masks/s (the bag plays at its recorded rate).'
              % (*summary['latency'], summary['fps']))
    print('Wrote %s' % picture)
    return 0 if summary['masks'] == count else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--video', type=Path, default=DEFAULT_VIDEO)
    parser.add_argument('--model', default='selfie_segmentation')
    parser.add_argument('--frames', type=int, help='at most this many frames (default: all)')
    parser.add_argument('--output', type=Path, default=Path('output'))
    parser.add_argument('--keep-bags', action='store_true',
                        help='keep the sample bag and the recording in OUTPUT')
    parser.add_argument('--extra-models', nargs='*', default=list(EXTRA_MODELS),
                        metavar='MODEL', help='models that make a picture each after the main '
                        'one, where installed (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.video.exists():
        print('Sample video %s is missing (run `make videos`).' % args.video, file=sys.stderr)
        return 1

    def body() -> int:
        try:
            if args.keep_bags:
                return run_demo(args.video, args.output, args.model, args.frames, args.output,
                                args.extra_models)
            with tempfile.TemporaryDirectory(prefix='image_segmenter_demo_') as work:
                return run_demo(args.video, args.output, args.model, args.frames, Path(work),
                                args.extra_models)
        except (TimeoutError, subprocess.SubprocessError) as error:  # a step failed or hung
            print('demo: error: %s' % error, file=sys.stderr)
            return 1
    return run('demo', body)


if __name__ == '__main__':
    sys.exit(main())

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
repair_bag: make a bag cut short complete again, in the spirit of ``ros2 bag reindex``.

``repair_bag BAG [OUTPUT] [--force]`` reads every complete message of a bag that was never
closed (a recording killed, or cut by a power loss) or whose file was truncated, and writes
them into a complete bag of the same storage: an MCAP file with its summary and footer (or a
sqlite3 file with nothing left to roll back) and metadata.yaml, as ``ros2 bag info`` and
``ros2 bag play`` expect. Without OUTPUT the bag is repaired in place: the complete bag
replaces it once it is written. Only messages the cut went through are lost.
"""

import argparse
from pathlib import Path
import sys
from typing import Optional, Sequence

from .bag_io import BagError, BagWriter
from .cli import open_bag, run

NAME = 'repair_bag'


def repair_bag(bag: Path, output: Optional[Path] = None, force: bool = False) -> Optional[int]:
    """Write the complete bag; return its number of messages, None if ``bag`` was complete."""
    bag = Path(bag)
    if output is None and bag.is_file():
        raise BagError('Bag %s is a single file: name an OUTPUT folder for the repaired bag.'
                       % bag)
    with open_bag(NAME, bag) as reader:
        if reader.cut_short is None and output is None:
            return None
        writer = BagWriter(output or bag, reader.storage, force=force or output is None)
        try:
            for topic, connections in reader.connections.items():
                writer.add_topic(topic, reader.topics[topic], like=connections[0])
            count = 0
            for message in reader.messages(list(reader.topics), views=True):
                writer.write_raw(message.topic, message.timestamp_ns, message.raw)
                count += 1
        except BaseException:
            writer.abort()
            raise
    writer.close()  # replaces the bag in place only now that it is no longer read
    return count


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and repair the bag."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.strip().splitlines()[0])
    parser.add_argument('bag', type=Path, help='rosbag2 directory, .mcap or .db3 file')
    parser.add_argument('output', type=Path, nargs='?',
                        help='new rosbag2 directory (default: repair BAG in place)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUTPUT')
    args = parser.parse_args(argv)

    def body() -> int:
        count = repair_bag(args.bag, args.output, args.force)
        if count is None:
            print('%s: bag %s is complete: nothing to repair' % (NAME, args.bag))
        else:
            print('%s: wrote %d messages to %s, a complete bag' % (
                NAME, count, args.output or args.bag))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())

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
``ros2 launch`` and the ``ros2`` command line as a user types them, for the launch tests.

They need the launch stack (built into the venv by ``make setup`` from
../shared/ros2-jazzy-src, or a sourced ROS install) and the package's colcon install space
(install/, also made by ``make setup``); ``MISSING`` says which is absent.
"""

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from ros_harness import PACKAGE_ROOT, ros_environment, track

INSTALL_SPACE = PACKAGE_ROOT / 'install' / 'image_segmenter_ros'
# Where `make setup` built the launch stack, the venv is an ament prefix with a local_setup.
VENV = Path(sys.prefix)


def _ament_prefixes() -> str:
    prefixes = [str(INSTALL_SPACE)]
    if (VENV / 'local_setup.sh').exists():
        prefixes.append(str(VENV))
    inherited = os.environ.get('AMENT_PREFIX_PATH', '')
    return os.pathsep.join(prefixes + [p for p in inherited.split(os.pathsep)
                                       if p and p not in prefixes])


def _path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get('PATH', '')])


def _missing() -> Optional[str]:
    try:
        import launch_ros  # noqa: F401
        import launch_testing  # noqa: F401
        import ros2launch  # noqa: F401
    except ImportError as error:
        return ('ROS 2 launch is not installed (%s): `make setup` builds it from '
                '../shared/ros2-jazzy-src when that folder is beside the checkout; otherwise '
                'source a ROS 2 install.' % error)
    if shutil.which('ros2', path=_path()) is None:
        return 'the ros2 command is not on PATH (source a ROS 2 install).'
    if not (INSTALL_SPACE / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'image_segmenter_ros').exists():
        return ('the package has no colcon install space (%s): run `make setup`.'
                % INSTALL_SPACE)
    return None


MISSING = _missing()
ROS2 = shutil.which('ros2', path=_path()) or 'ros2'


def use_install_space() -> None:
    """Let this process find the package and ros2 as ``source install/setup.bash`` would."""
    os.environ['AMENT_PREFIX_PATH'] = _ament_prefixes()
    os.environ['PATH'] = _path()


def launch_environment(domain: int, log_dir: Path) -> Dict[str, str]:
    """Return the environment of a ros2 command: loopback DDS in ``domain``, logs in log_dir."""
    env = ros_environment(domain)
    env.update(AMENT_PREFIX_PATH=_ament_prefixes(), PATH=_path(), ROS_LOG_DIR=str(log_dir))
    return env


def ros2(arguments: Sequence[str], env: Dict[str, str],
         timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run one ``ros2`` command; return it with its output (stderr in stdout)."""
    return subprocess.run([ROS2, *arguments], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def ros2_daemons(domain: str) -> List[str]:
    """Return the command lines of the running ``ros2`` daemons of one DDS domain."""
    found = []
    for cmdline in Path('/proc').glob('[0-9]*/cmdline'):
        try:
            words = cmdline.read_bytes().decode(errors='replace').split('\0')
        except OSError:  # the process ended meanwhile
            continue
        if 'ros2-daemon' in words and '--ros-domain-id' in words and \
                words[words.index('--ros-domain-id') + 1:][:1] == [domain]:
            found.append(' '.join(words))
    return found


def _as_from_a_terminal() -> None:
    """Give the child the default SIGINT handling a terminal gives (a CI runner may not)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Launch:
    """``ros2 launch image_segmenter_ros ...`` in a process group of its own, as in a terminal."""

    def __init__(self, arguments: List[str], env: Dict[str, str], log_path: Path,
                 wrapper: Sequence[str] = ()):
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.process = track(subprocess.Popen(
            [*wrapper, ROS2, 'launch', 'image_segmenter_ros', *arguments], env=env,
            cwd=log_path.parent, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_as_from_a_terminal))

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the launch output shows ``text``; fail early if launch has ended."""
        self.wait_for_output(lambda log: text in log, repr(text), timeout)

    def wait_for_output(self, shows: Callable[[str], bool], what: str,
                        timeout: float = 60.0) -> None:
        """Wait until ``shows(output)``; fail with the output if launch ends or time runs out."""
        deadline = time.monotonic() + timeout
        while not shows(self.log):
            if self.process.poll() is not None and not shows(self.log):
                raise AssertionError('ros2 launch ended (exit code %s) before printing %s:\n%s'
                                     % (self.process.returncode, what, self.log))
            if time.monotonic() > deadline:
                raise AssertionError('ros2 launch printed no %s in %.0f s:\n%s'
                                     % (what, timeout, self.log))
            time.sleep(0.02)

    def signal(self, sig: int, group: bool = False) -> None:
        """Send ``sig`` to the first process (launch, or its wrapper), or to the whole group."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the first process to exit; return its exit code."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('ros2 launch still runs %.0f s later:\n%s'
                                 % (timeout, self.log)) from None

    def close(self) -> None:
        """Kill whatever of the group still runs (a failed test); keep the log."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group has exited
            pass
        self.process.wait(10.0)
        self._log.close()


def stop_time(launch: Launch, sig: int, group: bool, timeout: float = 30.0) -> float:
    """Send a signal and return how long the launch took to exit."""
    sent = time.monotonic()
    launch.signal(sig, group)
    launch.wait(timeout)
    return time.monotonic() - sent

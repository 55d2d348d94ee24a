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

"""The package builds and tests with colcon, as in a ROS 2 workspace."""

import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).with_name('colcon')


def _copy_sources(destination: Path) -> None:
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                           cwd=PACKAGE_ROOT, check=True, capture_output=True, text=True)
    for name in files.stdout.splitlines():
        source = PACKAGE_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_colcon_build_installs_the_package_and_colcon_test_runs_its_linters(tmp_path):
    _copy_sources(tmp_path / 'src' / 'image_segmenter_ros')
    env = dict(os.environ, PATH='%s:%s' % (COLCON.parent, os.environ['PATH']))
    build = subprocess.run([str(COLCON), 'build', '--base-paths', 'src'], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    install = tmp_path / 'install' / 'image_segmenter_ros'
    share = install / 'share' / 'image_segmenter_ros'
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'image_segmenter_ros').exists()
    assert (share / 'package.xml').exists() and (share / 'models' / 'manifest.yaml').exists()
    assert (install / 'lib' / 'image_segmenter_ros' / 'fetch_models').exists()
    tested = subprocess.run(
        [str(COLCON), 'test', '--base-paths', 'src', '--pytest-args', '-m', 'linter'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    results = subprocess.run([str(COLCON), 'test-result', '--all', '--verbose'], cwd=tmp_path,
                             env=env, capture_output=True, text=True)
    assert results.returncode == 0, results.stdout + results.stderr
    summary = re.search(r'(\d+) tests, 0 errors, 0 failures, (\d+) skipped', results.stdout)
    assert summary, results.stdout
    ran, skipped = map(int, summary.groups())
    assert ran - skipped >= 3, results.stdout  # flake8, pep257 and copyright

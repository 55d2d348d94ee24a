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

"""The user's documents: a README short enough to read, and links that lead somewhere."""

from pathlib import Path
import re

from catkin_pkg.changelog import get_changelog_from_path
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / 'README.md', ROOT / 'models' / 'README.md',
             *sorted((ROOT / 'docs').glob('*.md'))]


def test_readme_stays_short():
    assert len((ROOT / 'README.md').read_bytes()) <= 15000


def test_relative_links_and_pictures_exist():
    for document in DOCUMENTS:
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', document.read_text()):
            if '://' in target:
                continue
            assert (document.parent / target).exists(), '%s links to a missing %s' % (
                document.relative_to(ROOT), target)


def test_changelog_parses_and_knows_the_package_version():
    changelog = get_changelog_from_path(str(ROOT / 'CHANGELOG.rst'), 'image_segmenter_ros')
    versions = [version for version, _, _ in changelog.foreach_version()]
    assert parse_package(str(ROOT / 'package.xml')).version in versions

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

"""Every source file carries the Apache-2.0 header (ament_copyright is not on PyPI)."""

from pathlib import Path

from lint_paths import LINTED_PATHS
import pytest

HEADER_LINES = (
    '# Copyright ',
    '# Licensed under the Apache License, Version 2.0 (the "License");',
)


def _python_files():
    for path in map(Path, LINTED_PATHS):
        yield from ([path] if path.is_file() else sorted(path.rglob('*.py')))


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    missing = []
    for path in _python_files():
        head = path.read_text(encoding='utf-8').splitlines()[:5]
        if not all(any(line.startswith(h) for line in head) for h in HEADER_LINES):
            missing.append(str(path))
    assert not missing, 'Missing Apache-2.0 copyright header:\n' + '\n'.join(missing)

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
Dependencies by who installs them on a robot: rosdep or pip.

rosdep installs package.xml's keys, pip requirements-robot.txt. The keys are checked against
rosdistro's rosdep rules for Ubuntu noble (Jazzy) and jammy (Humble), kept in rosdep_keys.yaml,
with each dependency's ``condition`` evaluated for that distribution as rosdep does, and against
what the release's archive lacks although a rule names it.
"""

import ast
from pathlib import Path
import re
import sys
from typing import Any, Iterable, Optional, Set
import xml.etree.ElementTree as ElementTree

from catkin_pkg.condition import evaluate_condition
import pytest
import yaml

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
ROSDEP_EXCERPT = Path(__file__).resolve().parent / 'rosdep_keys.yaml'
ROSDISTRO_ROSDEP = PACKAGE_ROOT.parent / 'shared' / 'rosdistro-rosdep'
# catkin_pkg, which evaluates the conditions as rosdep does, still uses pyparsing's old names.
pytestmark = [pytest.mark.filterwarnings('ignore::DeprecationWarning:catkin_pkg'),
              pytest.mark.filterwarnings("ignore:'parseAll' argument is deprecated")]
# (OS, release, the ROS 2 distribution built for it)
PLATFORMS = [('ubuntu', 'noble', 'jazzy'), ('ubuntu', 'jammy', 'humble')]
# Apt packages a release does not have although rosdistro's rule names them for it, so rosdep
# resolves the key and apt then fails the whole install: packages.ubuntu.com lists python3-numba
# for jammy and for releases after noble, not for noble.
NOT_IN_ARCHIVE = {'noble': {'python3-numba'}}
# Installer names rosdep accepts in place of a list of packages for Ubuntu.
INSTALLERS = {'apt', 'pip', 'source'}
# Python modules whose rosdep key is not their own name.
ROSDEP_KEYS = {'cv2': 'python3-opencv', 'flatbuffers': 'python3-flatbuffers',
               'numba': 'python3-numba', 'numpy': 'python3-numpy',
               'rosbags': 'python3-rosbags-pip', 'tqdm': 'python3-tqdm', 'yaml': 'python3-yaml',
               'pytest': 'python3-pytest', 'hypothesis': 'python3-hypothesis',
               # rosbags' own dependency: rosdep's pip install of rosbags brings it.
               'apsw': 'python3-rosbags-pip'}
# Modules rosdep has no key for: a robot takes them from requirements-robot.txt.
# tflite_runtime is the optional fallback of robots that ship it instead of ai-edge-litert.
PIP_ONLY = {'ai_edge_litert': 'ai-edge-litert', 'tflite_runtime': None}


def imported_modules(patterns: Iterable[str] = ('image_segmenter_ros/**/*.py',
                                                'launch/*.py')) -> Set[str]:
    """Top-level third-party modules imported by the files matching ``patterns``."""
    modules = set()
    for pattern in patterns:
        for source in sorted(PACKAGE_ROOT.glob(pattern)):
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split('.')[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules.add(node.module.split('.')[0])
    return {module for module in modules
            if module not in sys.stdlib_module_names and module != 'image_segmenter_ros'}


def depends(*tags: str, distro: Optional[str] = None) -> Set[str]:
    """Dependencies of these kinds; for ``distro``, only those whose condition holds there."""
    root = ElementTree.parse(PACKAGE_ROOT / 'package.xml').getroot()
    context = {'ROS_DISTRO': distro, 'ROS_VERSION': '2', 'ROS_PYTHON_VERSION': '3'}
    return {element.text.strip() for tag in tags for element in root.iter(tag)
            if distro is None or evaluate_condition(element.get('condition'), context)}


def requirement_names(name: str) -> Set[str]:
    """Normalised distribution names a requirements file lists."""
    lines = (PACKAGE_ROOT / name).read_text().splitlines()
    return {re.sub(r'[-_.]+', '-', re.match(r'[A-Za-z0-9_.-]+', line).group()).lower()
            for line in lines if line.strip() and not line.startswith(('#', '-'))}


def resolved(rule: Any, os_name: str, codename: str) -> Any:
    """Return what a rosdep rule installs on one release, as rosdep reads it (empty: nothing)."""
    rule = rule.get(os_name)
    if isinstance(rule, dict) and not INSTALLERS & rule.keys():
        rule = rule.get(codename, rule.get('*'))
    return rule or []


def test_every_imported_module_is_declared_for_each_distribution():
    robot = requirement_names('requirements-robot.txt')
    undeclared = []
    for _, codename, distro in PLATFORMS:
        declared = depends('exec_depend', distro=distro)
        for module in sorted(imported_modules()):
            key = ROSDEP_KEYS.get(module, module)
            if module in PIP_ONLY:
                if PIP_ONLY[module] and PIP_ONLY[module] not in robot:
                    undeclared.append('%s (requirements-robot.txt: %s)'
                                      % (module, PIP_ONLY[module]))
            elif key not in declared and module not in robot:
                undeclared.append('%s on %s (package.xml: %s, or requirements-robot.txt)'
                                  % (module, distro, key))
    assert not undeclared, 'imported but not declared: ' + ', '.join(undeclared)


def test_every_exec_depend_is_used():
    keys_in_use = {ROSDEP_KEYS.get(module, module) for module in imported_modules()}
    assert depends('exec_depend') - keys_in_use == set()


def test_every_dependency_is_a_ros_package_in_use_or_a_key_that_installs_on_noble_and_jammy():
    rules = yaml.safe_load(ROSDEP_EXCERPT.read_text())
    ros_packages = imported_modules(('image_segmenter_ros/**/*.py', 'launch/*.py', 'test/*.py'))
    wrong = []
    for os_name, codename, distro in PLATFORMS:
        for name in sorted(depends('depend', 'build_depend', 'exec_depend', 'test_depend',
                                   distro=distro)):
            if name in rules:
                packages = resolved(rules[name], os_name, codename)
                if not packages:
                    wrong.append('%s has no rule for %s %s' % (name, os_name, codename))
                elif isinstance(packages, list) and NOT_IN_ARCHIVE.get(codename, set()) & set(
                        packages):
                    wrong.append('%s names an apt package %s lacks' % (name, codename))
            elif name not in ros_packages:
                wrong.append('%s is neither a rosdep key in %s nor a ROS package the package or '
                             'its tests import' % (name, ROSDEP_EXCERPT.name))
    assert not wrong, '; '.join(wrong)


@pytest.mark.skipif(not ROSDISTRO_ROSDEP.is_dir(), reason='no folder %s' % ROSDISTRO_ROSDEP)
def test_rosdep_excerpt_is_rosdistros_own_rules():
    loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
    rosdistro = {}
    for name in ('base.yaml', 'python.yaml'):
        rosdistro.update(yaml.load((ROSDISTRO_ROSDEP / name).read_text(), Loader=loader))
    excerpt = yaml.safe_load(ROSDEP_EXCERPT.read_text())
    assert {key: rosdistro.get(key) for key in excerpt} == excerpt


def test_robot_requirements_leave_the_distributions_packages_alone():
    # requirements-noble.txt lists what Ubuntu ships for package.xml's keys; none may come from
    # pip on a robot, and neither may the ROS packages themselves.
    robot = requirement_names('requirements-robot.txt')
    distribution = requirement_names('requirements-noble.txt') | requirement_names(
        'requirements-ros.txt')
    assert 'ai-edge-litert' in robot
    assert robot & distribution == set()

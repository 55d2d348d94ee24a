#!/usr/bin/env bash
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

# Give a pip-only virtual environment the ROS 2 launch stack and the ros2 command line.
#
#   tools/install_ros_launch.sh VENV SOURCES
#
# launch, launch_ros, launch_testing(_ros), launch_xml/yaml, ros2launch and ros2cli with its
# verbs are not on PyPI. SOURCES holds their upstream Jazzy archives (see its README): they are
# installed into VENV, and composition_interfaces is generated there with rosidl, so VENV is an
# ament prefix (AMENT_PREFIX_PATH=VENV). A ROS install that already provides launch (a sourced
# /opt/ros) is used as it is; without either, nothing is installed and the launch tests skip.
# A stamp in VENV makes a second run instant.
set -euo pipefail

venv=$(cd "$1" && pwd)
sources=$2
py=$venv/bin/python
stamp=$venv/.ros_launch_installed

installed_elsewhere() {
    "$py" -c 'import launch_ros, launch_testing, ros2launch' 2>/dev/null &&
        [[ "$("$py" -c 'import launch; print(launch.__file__)')" != "$venv"/* ]]
}

install_stack() {
    if [ ! -f "$stamp" ] && installed_elsewhere; then
        echo "ROS 2 launch: using the one already installed ($(command -v ros2 || true))."
        return
    fi
    if [ ! -d "$sources" ]; then
        [ -f "$stamp" ] ||
            echo "ROS 2 launch: not installed and $sources is absent; the launch tests will skip."
        return
    fi
    sources=$(cd "$sources" && pwd)
    # The stamp names what was installed: these archives, by this script.
    version=$(cat "$0" "$sources"/*.tar.gz | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
        return
    fi
    for tool in cmake g++ make; do
        command -v "$tool" >/dev/null || {
            echo "ROS 2 launch needs $tool (composition_interfaces): apt-get install cmake g++" >&2
            exit 1
        }
    done
    echo "ROS 2 launch: installing launch, launch_testing and ros2cli from $sources ..."
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT

    # Runtime dependencies of the launch stack, and the rosidl generators for
    # composition_interfaces (their own dependency lists are incomplete, hence all of them).
    wheels=(ament-index-python lifecycle-msgs rcl-interfaces builtin-interfaces
            ament-cmake ament-cmake-ros rosidl-default-generators python-cmake-module ament-package
            ament-cmake-include-directories rosidl-core-generators rosidl-cmake rosidl-generator-c
            rosidl-generator-cpp rosidl-generator-py rosidl-generator-type-description
            rosidl-typesupport-c rosidl-typesupport-cpp rosidl-typesupport-fastrtps-c
            rosidl-typesupport-fastrtps-cpp rosidl-typesupport-introspection-c
            rosidl-typesupport-introspection-cpp rosidl-adapter rosidl-cli rosidl-parser
            rosidl-pycommon rosidl-typesupport-interface fastrtps-cmake-module
            rmw-implementation-cmake service-msgs type-description-interfaces ament-cmake-gmock
            ament-cmake-gtest ament-cmake-pytest)
    "$py" -m pip install --quiet "${wheels[@]/#/ros-jazzy-}" osrf-pycommon lark PyYAML psutil \
        packaging catkin_pkg argcomplete wheel

    for archive in "$sources"/*.tar.gz; do
        tar -xzf "$archive" -C "$work"
    done
    # --no-deps: their install_requires use ROS names, which are not PyPI names.
    "$py" -m pip install --quiet --no-deps --no-build-isolation \
        "$work"/launch/{launch,launch_xml,launch_yaml,launch_testing,launch_pytest} \
        "$work"/launch_ros/{launch_ros,launch_testing_ros,ros2launch} \
        "$work"/rosidl_runtime_py \
        "$work"/ros2cli/{ros2cli,ros2run,ros2pkg,ros2node,ros2topic,ros2param,ros2service} \
        "$work"/ros2cli/{ros2interface,ros2action,ros2lifecycle,ros2component}

    # The wheels' CMake exports name the include folders of the machine they were built on.
    python_include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    numpy_include=$("$py" -c 'import numpy; print(numpy.get_include())')
    { grep -rlZ --include="*.cmake" -e /opt/python/cp311-cp311 "$venv/share" || true; } |
        xargs -0r sed -i \
        -e "s|/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include|$numpy_include|g" \
        -e "s|/opt/python/cp311-cp311/include/python3.11|$python_include|g"
    (
        export PATH=$venv/bin:$PATH AMENT_PREFIX_PATH=$venv
        cd "$work"
        cmake -S rcl_interfaces/composition_interfaces -B build -DCMAKE_INSTALL_PREFIX="$venv" \
            -DCMAKE_PREFIX_PATH="$venv" -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
            -DCMAKE_BUILD_TYPE=Release >build.log 2>&1 &&
            make -C build -j"$(nproc)" install >>build.log 2>&1 || {
                tail -n 40 build.log >&2
                exit 1
            }
    )
    "$py" -c 'import launch_ros.actions, launch_testing, ros2launch, composition_interfaces.srv'
    # colcon chains an ament prefix that has a local_setup script into install/setup.bash.
    for shell in sh bash zsh; do
        cat >"$venv/local_setup.$shell" <<EOF
# The virtual environment as an ament prefix: ros2, launch and the ROS 2 wheels in it.
export AMENT_PREFIX_PATH="$venv\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export PATH="$venv/bin:\$PATH"
# This development environment keeps DDS on this machine unless told otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
EOF
    done
    echo "$version" >"$stamp"
    echo "ROS 2 launch: installed into $venv (ros2, launch_test)."
}

# The package in a colcon install space, its files symlinked to the sources, so that ros2 run
# and ros2 launch find it after `source install/setup.bash`.
build_install_space() {
    local prefixes=${AMENT_PREFIX_PATH:-}
    [ -f "$venv/local_setup.sh" ] && prefixes=$venv${prefixes:+:$prefixes}
    AMENT_PREFIX_PATH=$prefixes PATH=$venv/bin:$PATH "$venv/bin/colcon" --log-base build/log \
        build --symlink-install --base-paths . --event-handlers console_direct- >/dev/null
}

install_stack
build_install_space

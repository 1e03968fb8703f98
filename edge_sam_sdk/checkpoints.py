"""Official checkpoints by name: the cache folder, fetching (download, verify, place), resolving.

``--checkpoint official`` (or the variant's name, or ``official:VARIANT``) stands for the
variant's official file(s) as listed in its :class:`~.registry.CheckpointSpec`. They are
kept in ``$EDGESAM_HOME/checkpoints/<official file name>`` (default ``EDGESAM_HOME``: the
user cache folder, ``pooch.os_cache("edgesam")``, e.g. ``~/.cache/edgesam``). A file is
fetched once: downloaded with ``requests`` through :func:`pooch.retrieve` (a temporary
file in the cache folder, renamed into place only when complete and verified), resumed
from ``<file>.part`` with an HTTP ``Range`` request after an interruption, checked
against the official byte count and sha256 where those are known, under a
:class:`filelock.FileLock` so concurrent runs download it once. A verified file gets a
``<file>.sha256`` record (digest, size, mtime) so later runs trust it without hashing.

Environment: ``EDGESAM_HOME`` (cache folder), ``EDGESAM_CHECKPOINT_MIRROR`` (a base URL
serving the official file names, used instead of the official URLs: a company mirror, or
the tests' local server; proxies are taken from ``HTTPS_PROXY``/``HTTP_PROXY`` as usual),
``EDGESAM_OFFLINE=1`` (never touch the network: cached files only).

No torch import here: this is the SDK side; ``exporters.checkpoint`` calls
:func:`resolve_checkpoint` before reading files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import sys
import threading
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import CheckpointError, UnknownVariantError
from .registry import CheckpointSpec, get_variant, list_variants

ENV_HOME = "EDGESAM_HOME"
ENV_MIRROR = "EDGESAM_CHECKPOINT_MIRROR"
ENV_OFFLINE = "EDGESAM_OFFLINE"
OFFICIAL = "official"
#: (connect, read) timeouts in seconds for downloads
TIMEOUT = (10.0, 60.0)

Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    """The default ``say``: no progress messages."""


def cache_dir() -> Path:
    """The folder official checkpoints are kept in (created on first fetch)."""
    home = os.environ.get(ENV_HOME)
    if home:
        root = Path(home).expanduser()
    else:
        import pooch

        root = Path(pooch.os_cache("edgesam")).expanduser()
    return root / "checkpoints"


def offline() -> bool:
    """``EDGESAM_OFFLINE`` is set to a true value: cached files only, no network."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def source_url(ck: CheckpointSpec, file: str) -> str | None:
    """Where ``file`` is downloaded from: the mirror (``EDGESAM_CHECKPOINT_MIRROR``) when
    set, else its official URL; ``None`` when it has no direct download."""
    official = ck.downloads.get(file)
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if mirror and official:
        return f"{mirror.rstrip('/')}/{urllib.parse.quote(Path(urllib.parse.urlparse(official).path).name)}"
    return official


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: Path) -> str | None:
    """The digest recorded when ``path`` was verified, if the file is unchanged since."""
    try:
        digest, size, mtime = _record_path(path).read_text().split()
        st = path.stat()
    except (OSError, ValueError):
        return None
    return digest if (int(size), int(mtime)) == (st.st_size, st.st_mtime_ns) else None


def _write_record(path: Path, digest: str) -> None:
    st = path.stat()
    tmp = path.with_name(path.name + ".sha256.tmp")
    tmp.write_text(f"{digest} {st.st_size} {st.st_mtime_ns}\n")
    os.replace(tmp, _record_path(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _check(ck: CheckpointSpec, file: str, path: Path, where: str) -> str:
    """Size and sha256 of ``path`` against the official ones; a mismatch removes the file."""
    size, want = ck.size.get(file), ck.sha256.get(file)
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        path.unlink(missing_ok=True)
        raise CheckpointError(f"{where} {file} has {got_size} bytes, the official file {size} "
                              "(truncated or another file); removed it, run again to download it anew")
    digest = _sha256(path)
    if want is not None and digest != want:
        path.unlink(missing_ok=True)
        raise CheckpointError(f"{where} {file} has sha256 {digest}, expected {want} (the official "
                              "file's); removed it, run again to download it anew")
    return digest


def cached(file: str) -> Path | None:
    """``file``'s verified path in the cache, or ``None`` (no hashing: the record is read)."""
    path = cache_dir() / file
    return path if path.is_file() and recorded_sha256(path) is not None else None


def cache_state(variant: str) -> str:
    """For ``edgesam list``: ``yes`` (all official files cached), ``n/m``, ``no``, or ``-``
    (not cached and no direct download: fetched by hand)."""
    ck = get_variant(variant).checkpoint
    files = ck.official_files()
    have = sum(cached(f) is not None for f in files)
    if have == len(files):
        return "yes"
    if have:
        return f"{have}/{len(files)}"
    return "no" if all(f in ck.downloads for f in files) else "-"


class _Interrupted(Exception):
    def __init__(self, got: int, total: int) -> None:
        super().__init__(f"{got} of {total} bytes")
        self.got, self.total = got, total


class _ResumableDownload:
    """A pooch downloader (``(url, output_file, pooch)``) that streams into ``part`` with
    ``requests``, resumes it with a ``Range`` request, and moves it to ``output_file``
    when complete. ``requests``' own exceptions propagate."""

    def __init__(self, part: Path, timeout: tuple[float, float], expected: int | None) -> None:
        self.part, self.timeout, self.expected = part, timeout, expected

    def __call__(self, url: str, output_file: str, _pooch: Any, check_only: bool = False) -> None:
        import requests
        from tqdm.auto import tqdm

        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416 and offset and offset != self.expected:
                self.part.unlink()  # a stale partial the server cannot continue: start over
                return self(url, output_file, _pooch)
            if r.status_code == 416 and offset:
                pass  # a complete .part left by a run stopped before it was moved
            else:
                r.raise_for_status()
                if r.status_code != 206:
                    offset = 0  # the server ignored the range: start over
                length = int(r.headers.get("content-length") or 0)
                total = offset + length if length else (self.expected or 0)
                with open(self.part, "ab" if offset else "wb") as f, tqdm(
                        total=total or None, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=self.part.name[:-5], disable=None, file=sys.stderr, leave=False) as bar:
                    for chunk in r.iter_content(chunk_size=1 << 16):
                        f.write(chunk)
                        bar.update(len(chunk))
                got = self.part.stat().st_size
                if total and got < total:
                    raise _Interrupted(got, total)
        os.replace(self.part, output_file)


def probe(url: str, timeout: float) -> str | None:
    """``None`` when a TCP connection to ``url``'s host (or its proxy) opens within
    ``timeout`` seconds, else why not. Name lookup is bounded too (it runs in a thread)."""
    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname or ""
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlparse(proxy if "//" in proxy else f"http://{proxy}")
        host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(str(exc) or type(exc).__name__)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return f"cannot reach {host}:{port} within {timeout:g} s"
    return None if result[0] is None else f"cannot reach {host}:{port} ({result[0]})"


def _reason(exc: BaseException, url: str, timeout: tuple[float, float]) -> str:
    """One line for a failed download, or re-raise what is not a download failure."""
    import requests

    if isinstance(exc, _Interrupted | requests.exceptions.ChunkedEncodingError):
        got = f" after {exc}" if isinstance(exc, _Interrupted) else ""
        return f"the download was interrupted{got}; the partial file is kept: run again to resume"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer from {url} within {timeout[1] if 'Read' in type(exc).__name__ else timeout[0]:g} s"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        return f"{url} answered HTTP {code}" + (" (not found)" if code == 404 else "")
    if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" in str(exc):
        return (f"no data from {urllib.parse.urlparse(url).netloc} for {timeout[1]:g} s; the partial file "
                "is kept: run again to resume")
    if isinstance(exc, requests.exceptions.ConnectionError):
        host = urllib.parse.urlparse(url).netloc
        return f"no connection to {host} (offline? behind a proxy: set HTTPS_PROXY)"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    raise exc


def fetch_file(ck: CheckpointSpec, file: str, *, timeout: tuple[float, float] = TIMEOUT,
               probe_timeout: float | None = None, say: Say = _quiet) -> Path:
    """The cached path of official ``file`` of ``ck``, downloading and verifying it if needed.

    A file put into the cache folder by hand is verified (size, sha256 where known) on first
    use. ``probe_timeout``: first check within that many seconds that the host can be
    reached (the demo's guard against hanging offline). Every failure is one
    :class:`CheckpointError` line; nothing unverified is left under the file's name.
    """
    folder = cache_dir()
    path = folder / file
    if cached(file):
        return path
    if path.is_file():
        say(f"verifying {path}")
        _write_record(path, _check(ck, file, path, "cached"))
        return path
    url = source_url(ck, file)
    if url is None:
        raise CheckpointError(f"{file} has no direct download; get it from {ck.url} and pass its path "
                              f"(or put it in {folder})")
    if offline():
        raise CheckpointError(f"{file} is not in the cache ({folder}) and {ENV_OFFLINE} is set")
    if probe_timeout is not None and (why := probe(url, probe_timeout)):
        raise CheckpointError(f"cannot download {file}: {why}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the checkpoint cache {folder}: {exc.strerror or exc}") from None
    from filelock import FileLock, Timeout

    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=1)
    except Timeout:
        say(f"waiting for another edgesam process downloading {file}")
        lock.acquire()
    try:
        if not cached(file):
            _download(ck, file, url, folder, timeout, say)
    finally:
        lock.release()
    return path


def _download(ck: CheckpointSpec, file: str, url: str, folder: Path, timeout: tuple[float, float],
              say: Say) -> None:
    import pooch

    zipped = file in ck.zipped
    name = file + ".zip" if zipped else file
    part = folder / (name + ".part")
    expected = None if zipped else ck.size.get(file)
    have = part.stat().st_size if part.is_file() else 0
    free = shutil.disk_usage(folder).free
    if expected is not None and expected - have > free:
        raise CheckpointError(f"not enough disk space for {file} in {folder}: it needs "
                              f"{(expected - have) / 1e6:.0f} MB, {free / 1e6:.0f} MB are free")
    say(f"downloading {file} from {url}" + (f" (resuming at {have} bytes)" if have else "")
        + f" into {folder}")
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        pooch.retrieve(url, known_hash=None, fname=name, path=folder,
                       downloader=_ResumableDownload(part, timeout, expected))
    except Exception as exc:
        import requests

        if isinstance(exc, OSError) and not isinstance(exc, requests.exceptions.RequestException):
            if exc.errno == errno.ENOSPC:
                part.unlink(missing_ok=True)
                raise CheckpointError(f"no space left in {folder} while downloading {file}; "
                                      "removed the partial file") from None
            raise CheckpointError(f"cannot write {file} into {folder}: {exc.strerror or exc}") from None
        raise CheckpointError(f"cannot download {file}: {_reason(exc, url, timeout)}") from None
    finally:
        logger.setLevel(level)
    path = folder / file
    if zipped:
        _unzip(folder / name, file, path)
    digest = _check(ck, file, path, "downloaded")
    _write_record(path, digest)
    if file not in ck.sha256:
        say(f"{file}: sha256 {digest} (no official digest is recorded to compare with)")


def _unzip(archive: Path, member: str, dest: Path) -> None:
    """Extract ``member`` of ``archive`` to ``dest`` (atomically) and remove the archive."""
    tmp = dest.with_name(dest.name + ".unzip")
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if Path(n).name == member]
            if not names:
                raise CheckpointError(f"{archive.name} does not hold {member}")
            with z.open(names[0]) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 22)
        os.replace(tmp, dest)
    except zipfile.BadZipFile:
        raise CheckpointError(f"{archive.name} is not a zip archive (truncated?); removed it") from None
    finally:
        tmp.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)


def fetch_variant(variant: str, **kwargs: Any) -> list[Path]:
    """The cached paths of ``variant``'s official files (see :func:`fetch_file`)."""
    ck = get_variant(variant).checkpoint
    return [fetch_file(ck, f, **kwargs) for f in ck.official_files()]


def official_name(token: str) -> str | None:
    """The variant an ``official:VARIANT`` or bare variant-name token stands for, else
    ``None`` (an existing path always wins over a variant name)."""
    token = token.strip()
    if token.startswith(OFFICIAL + ":"):
        name = token[len(OFFICIAL) + 1:]
        get_variant(name)  # unknown -> UnknownVariantError naming the known ones
        return name
    if token in list_variants() and not Path(token).exists():
        return token
    return None


def resolve_checkpoint(checkpoint: str, variant: str | None = None, **kwargs: Any) -> str:
    """``checkpoint`` with every official reference replaced by cached local paths.

    References: ``official`` (the variant's official file(s); in a ``,``-joined list, the
    file of that position, e.g. NanoSAM's ``checkpoint.pth,official``), ``official:NAME``
    and a bare variant name. Paths and ``synthetic:SEED`` pass through unchanged.
    ``kwargs`` go to :func:`fetch_file`.
    """
    text = str(checkpoint).strip()
    if text.startswith("synthetic:") or Path(text).exists():
        return str(checkpoint)
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    out: list[str] = []
    for i, token in enumerate(tokens):
        if token == OFFICIAL:
            if variant is None:
                raise CheckpointError("'official' needs the variant: pass the variant name instead "
                                      "(e.g. checkpoint='mobile_sam') or official:VARIANT")
            ck = get_variant(variant).checkpoint
            files = ck.official_files()
            if len(tokens) == 1:
                out += [str(p) for p in fetch_variant(variant, **kwargs)]
            elif len(tokens) == len(files):
                out.append(str(fetch_file(ck, files[i], **kwargs)))
            else:
                raise CheckpointError(f"'official' at position {i + 1} of {len(tokens)} files: {variant} "
                                      f"has {len(files)} official file(s) ({','.join(files)})")
            continue
        try:
            name = official_name(token)
        except UnknownVariantError as exc:
            raise CheckpointError(str(exc)) from None
        out += [str(p) for p in fetch_variant(name, **kwargs)] if name else [token]
    return ",".join(out)

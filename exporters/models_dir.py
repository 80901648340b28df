"""A models directory: several artifacts side by side and a pointer to the one to serve.

    MODELS_DIR/
      current                 the served version's name (one line, replaced atomically)
      <name>-<sha12>/         an artifact (manifest.json, graphs, detectors), never edited

A version is the artifact's name and the start of its manifest's sha256 (`artifact_version`,
the one rule, also used by the service for its store keys): a new export is a new version.
Publishing copies into a hidden temp directory beside the others, then renames it into
place, then (unless told not to) replaces `current`; a reader sees the old version or the
new one, never half of either. The service's `POST /v1/admin/reload`, SIGHUP or pointer
watch then switches to whatever `current` names.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from exporters.artifact import MANIFEST, ArtifactError, load_artifact, sha256

POINTER = "current"
_HASH_CHARS = 12
_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def artifact_version(root: Path) -> str:
    """`<directory name>-<first 12 hex of the manifest's sha256>`; a directory already named
    by its version (a published one) keeps its name."""
    digest = sha256(root / MANIFEST)[:_HASH_CHARS]
    name = root.name
    return name if name.endswith(f"-{digest}") else f"{name}-{digest}"


def artifact_name(root: Path) -> str:
    """The artifact's name: its directory's, less the version suffix a published copy has."""
    suffix = f"-{sha256(root / MANIFEST)[:_HASH_CHARS]}"
    return root.name[: -len(suffix)] if root.name.endswith(suffix) else root.name


def read_pointer(models_dir: Path) -> str:
    path = models_dir / POINTER
    try:
        version = path.read_text().strip()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; publish a model with `aia models publish "
                            f"ARTIFACT --to {models_dir}`") from None
    check_version_name(version, path)
    return version


def check_version_name(version: str, where: Path | str = "version") -> None:
    if not _VERSION.match(version) or version in (".", ".."):
        raise ArtifactError(f"{where}: {version!r} is not a version name (letters, digits, "
                            "'.', '_', '-')")


def version_path(models_dir: Path, version: str | None = None) -> Path:
    """The artifact directory of `version` (None: the one `current` names)."""
    version = read_pointer(models_dir) if version is None else version
    check_version_name(version)
    path = models_dir / version
    if not (path / MANIFEST).is_file():
        raise ArtifactError(f"{path}: no such version in {models_dir} (have: "
                            f"{', '.join(list_versions(models_dir)) or 'none'})")
    return path


def list_versions(models_dir: Path) -> list[str]:
    """Published versions, oldest first (by the time they were published)."""
    found = [p for p in models_dir.iterdir()
             if not p.name.startswith(".") and (p / MANIFEST).is_file()]
    return [p.name for p in sorted(found, key=lambda p: (p.stat().st_mtime, p.name))]


def write_pointer(models_dir: Path, version: str) -> None:
    """Point `current` at `version`, atomically (a temp file renamed over it)."""
    version_path(models_dir, version)
    fd, temp = tempfile.mkstemp(prefix=f".{POINTER}-", dir=models_dir)
    with os.fdopen(fd, "w") as out:
        out.write(version + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temp, 0o644)
    os.replace(temp, models_dir / POINTER)


def publish(artifact: Path, models_dir: Path, switch: bool = True) -> str:
    """Copy a verified artifact into `models_dir` as its version (idempotent: the same
    version twice is one copy) and, with `switch`, point `current` at it. Returns the
    version."""
    load_artifact(artifact)  # a broken artifact never enters the directory
    version = artifact_version(artifact)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / version
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=models_dir))
        try:
            copied = staging / version
            shutil.copytree(artifact, copied)
            os.replace(copied, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        target.chmod(0o755)
    if switch:
        write_pointer(models_dir, version)
    return version

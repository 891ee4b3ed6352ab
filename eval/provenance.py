"""What produced a run: content hashes of its files and the versions of the packages that ran."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

__all__ = ["EVALUATION_PACKAGES", "INFERENCE_PACKAGES", "file_sha256", "now", "package_versions"]

# Packages whose version can change a prediction or a metric.
INFERENCE_PACKAGES = ("rarft", "torch", "transformers", "vllm", "decord", "av", "numpy")
EVALUATION_PACKAGES = ("rarft", "sentence-transformers", "transformers", "torch", "openai")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed version of each package; None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

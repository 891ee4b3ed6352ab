"""What produced a run: the versions of the packages that ran, and when (file hashes: `io_utils.file_sha256`)."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import metadata

__all__ = ["EVALUATION_PACKAGES", "INFERENCE_PACKAGES", "now", "package_versions"]

# Packages whose version can change a prediction or a metric.
INFERENCE_PACKAGES = ("rarft", "torch", "transformers", "vllm", "decord", "av", "numpy")
EVALUATION_PACKAGES = ("rarft", "sentence-transformers", "transformers", "torch", "openai")


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

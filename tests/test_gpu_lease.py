"""scripts/gpu_lease.sh's staging on CPU: every call stages again what earlier calls carried (the path stays in the
machine's tree), while the queue may be reading it. On 2026-12-06 a copy over the stack's part being unpacked
corrupted the unpack ("xz: Compressed data is corrupt") and cost the rest of a lease."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PART = 4 << 20  # larger than a pipe's buffer: a reader holds it open across the next staging


@pytest.fixture
def lease(tmp_path):
    """A tree as the machine has it (the script, .whl/), a lease root, and a function staging as a call does."""
    src = tmp_path / "src"
    (src / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "gpu_lease.sh", src / "scripts")
    root = tmp_path / "root"

    def stage():
        subprocess.run(
            ["bash", str(src / "scripts" / "gpu_lease.sh"), "stage"],
            env={**os.environ, "LEASE_ROOT": str(root)},
            check=True,
            capture_output=True,
        )
        return root / "stage"

    return src / ".whl", stage


def carry(whl: Path, name: str, data: bytes) -> None:
    path = whl / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("name", ["stack/part.01", "curve/assets/videos/clip.mp4", "m/model.safetensors.fp16"])
def test_a_file_being_read_is_never_written_over(lease, name):
    whl, stage = lease
    old, new = b"a" * PART, b"b" * PART
    carry(whl, name, old)
    staged = stage() / name
    with staged.open("rb") as reader:
        head = reader.read(PART // 2)
        carry(whl, name, new)  # a later call carries a changed file under the same name
        stage()
        assert head + reader.read() == old  # the reader finishes the file it opened
    assert staged.read_bytes() == new
    assert not [p for p in staged.parent.iterdir() if p.name.endswith(".staging")]


def test_a_file_staged_as_it_is_stays_untouched(lease):
    """The common case: the path a call carried is still in the tree at the next call, unchanged."""
    whl, stage = lease
    carry(whl, "stack/part.00", b"x" * PART)
    carry(whl, "stack/SHA256SUMS", b"sums\n")
    before = {p.name: p.stat().st_ino for p in (stage() / "stack").iterdir()}
    after = {p.name: p.stat().st_ino for p in (stage() / "stack").iterdir()}
    assert before == after and set(after) == {"part.00", "SHA256SUMS"}


def test_parts_carried_by_different_calls_gather(lease):
    whl, stage = lease
    for part in ("part.00", "part.01", "part.02"):
        shutil.rmtree(whl / "stack", ignore_errors=True)  # a call carries one part: the path holds only it
        carry(whl, f"stack/{part}", part.encode())
        staged = stage() / "stack"
    assert sorted(p.name for p in staged.iterdir()) == ["part.00", "part.01", "part.02"]

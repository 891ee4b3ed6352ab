"""A recipe's final rarft-train command line in milliseconds: the recipe run with a `PYTHON` that prints it (tests).

The recipe does all its own work (variables, presets, placement, its refusals); only the interpreter it hands the
command to is replaced, so nothing is checked by rarft-train and the memory estimate adds nothing (its call fails).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"

PRINTER = """#!/usr/bin/env bash
# `-m rarft_plugin.train ARGS`: print ARGS one a line; any other call (the memory estimate) fails
[[ "$1 $2" == "-m rarft_plugin.train" ]] || exit 1
shift 2
printf '%s\\n' "$@"
"""


@functools.cache
def _printer() -> str:
    folder = tempfile.mkdtemp(prefix="rarft-recipe-argv-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "python"
    path.write_text(PRINTER)
    path.chmod(0o755)
    return str(path)


def run_recipe_printing(recipe: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`recipes/RECIPE ARGS` with `env` over a clean environment (no RARFT_*), RARFT_MODEL / RARFT_DATA / RARFT_OUTPUT
    defaulting to placeholders, and the printing interpreter."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("RARFT_")}
    placeholders = {"RARFT_MODEL": "/models/m", "RARFT_DATA": "/data/train.jsonl", "RARFT_OUTPUT": "/runs/out"}
    return subprocess.run(
        ["bash", str(RECIPES / recipe), *args],
        capture_output=True,
        text=True,
        env={**clean, **placeholders, **env, "PYTHON": _printer()},
        timeout=60,
    )


def recipe_argv(recipe: str, *args: str, **env: str) -> list[str]:
    """The rarft-train arguments the recipe ends with (it must succeed)."""
    done = run_recipe_printing(recipe, *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()

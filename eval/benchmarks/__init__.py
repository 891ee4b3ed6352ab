"""The evaluation annotation files released with RA-RFT, shipped unchanged (Apache-2.0, see NOTICE).

>>> benchmark_path("hi_vtg_charades").name
'hi_vtg_charades.json'
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> what it is (paper §4.1)
BENCHMARKS: dict[str, str] = {
    "hi_vtg_charades": "HI-Charades: hard-irrelevant VTG evaluation (Tables 1, 5, 6, 10, 11)",
    "human_anno": "Human-Annotated RA-VTG (Tables 3, 9)",
    "ss_vtg_charades": "SS-Charades: simply-shuffled RA-VTG (Table 2)",
}


def benchmark_path(name: str) -> Path:
    """The shipped copy of a released benchmark file, by name (with or without `.json`)."""
    stem = name.removesuffix(".json")
    if stem not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; shipped: {sorted(BENCHMARKS)}")
    return HERE / f"{stem}.json"

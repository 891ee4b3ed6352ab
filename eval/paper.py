"""The paper's published numbers, typed in from its tables, for `rarft-eval compare --paper`.

Values are as printed: percentages x100 (RA-IoU, F1, RT-IoU), the SBERT score as a fraction,
the LLM score 0-5; `None` where the paper prints "-". Each row keeps its table, its dataset
and its method as printed, with the baseline a "+ RA-RFT (ours)" row extends spelled out
(`method`: "Time-R1 + RA-RFT (ours)"; citations dropped, the in-distribution star kept).

| table | dataset(s) | what |
|---|---|---|
| Table 1 | HI-ActivityNet, HI-TVGBench, HI-Charades | RA-IoU R@0.3/0.5/0.7, mIoU; F1 re./irre./avg. |
| Table 2 | SS-ActivityNet, SS-Charades, SS-QVHighlights | same |
| Table 3 | Human-Annotated | same + RT-IoU, SBERT score, LLM score |
| Table 6 | HI-ActivityNet (§5: every analysis is on it) | per hardness level: F1, LLM score |
| Table 8 | not named (its rows equal Table 1's HI-ActivityNet rows) | RA-IoU and F1 |
| Table 10 | HI-Charades | per hardness level: F1, LLM score |
| Table 11 | HI-TVGBench | per hardness level: F1, LLM score |
| Table 12 | not named | RA-IoU and F1, Qwen2.5-VL-7B |

Oddities of the published tables, kept as printed: Table 1's RaTSG* R@0.5 on HI-ActivityNet
has two decimals (31.91); Table 2's RaTSG* and NA-VMR* rows on SS-Charades rise from R@0.3 to
R@0.7 (impossible for recall at rising thresholds); Table 2's "+ RA-RFT (ours)" row of Time-R1
on SS-ActivityNet repeats its SS-QVHighlights row digit for digit; Table 2's TimeChat mIoU on
SS-ActivityNet is 50.0 with R@0.3 11.5. The paper states HI-Charades' size as 3.7K
video-query pairs; the released `hi_vtg_charades.json` holds 2,194 queries.

The released evaluation files shipped in `eval/benchmarks/` are recognised by content
(`SHIPPED_DATASETS`: SHA-256 of each file), so a run evaluated on one of them finds its paper rows
without being told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from rarft_plugin.dataset import RELEASED_FILES

__all__ = [
    "DATASETS",
    "ROWS",
    "SHIPPED_DATASETS",
    "TABLES",
    "Explanation",
    "LevelScores",
    "PaperRow",
    "RaIouF1",
    "find_method",
    "paper_rows",
]

TABLES = ("Table 1", "Table 2", "Table 3", "Table 6", "Table 8", "Table 10", "Table 11", "Table 12")
DATASETS = (
    "HI-ActivityNet",
    "HI-TVGBench",
    "HI-Charades",
    "SS-ActivityNet",
    "SS-Charades",
    "SS-QVHighlights",
    "Human-Annotated",
)

# The released evaluation files (eval/benchmarks/), by the SHA-256 of their content -> the paper's dataset.
SHIPPED_DATASETS = RELEASED_FILES


class RaIouF1(NamedTuple):
    """RA-IoU and F1 columns of Tables 1, 2, 3, 8, 12 (percent, as printed)."""

    r03: float | None
    r05: float | None
    r07: float | None
    miou: float | None
    f1_rel: float | None
    f1_irrel: float | None
    f1_avg: float | None


class Explanation(NamedTuple):
    """Explanation quality columns of Table 3: RT-IoU (percent), SBERT score (fraction), LLM score (0-5)."""

    rt_iou: float | None
    sbert: float | None
    llm_score: float | None


class LevelScores(NamedTuple):
    """Per hardness level (Tables 6, 10, 11): F1 (percent) and LLM score (0-5)."""

    strong_f1: float | None
    strong_llm: float | None
    moderate_f1: float | None
    moderate_llm: float | None
    weak_f1: float | None
    weak_llm: float | None


@dataclass(frozen=True)
class PaperRow:
    table: str
    dataset: str | None  # None: the paper does not say which dataset
    method: str
    ra: RaIouF1 | None = None
    explanation: Explanation | None = None
    levels: LevelScores | None = None

    @property
    def label(self) -> str:
        return f"paper {self.table}: {self.method}"


_ = None  # "-" in the paper
# The three RFT baselines and their RA-RFT versions, in the order the tables print them.
RFT = (
    "Time-R1",
    "Time-R1 + RA-RFT (ours)",
    "VideoChat-R1",
    "VideoChat-R1 + RA-RFT (ours)",
    "VideoChat-R1-think",
    "VideoChat-R1-think + RA-RFT (ours)",
)


def _ra_rows(table: str, dataset: str | None, rows: list[tuple]) -> list[PaperRow]:
    return [PaperRow(table, dataset, method, ra=RaIouF1(*values)) for method, *values in rows]


# Table 1: evaluation results on the Hard-Irrelevant VTG datasets.
TABLE_1 = [
    *_ra_rows(
        "Table 1",
        "HI-ActivityNet",
        [
            ("RaTSG*", 40.5, 31.91, 23.8, 32.4, 67.0, 36.5, 51.7),
            ("NA-VMR*", _, _, _, _, _, _, _),
            ("TimeChat", 12.7, 6.4, 2.8, 9.0, 66.7, 0.0, 33.3),
            ("TimeSuite", 20.1, 12.7, 7.7, 15.4, 66.6, 3.0, 34.8),
            ("TRACE", 18.2, 12.8, 8.3, 14.1, 65.9, 10.3, 38.1),
            (RFT[0], 53.0, 45.0, 38.2, 45.9, 74.2, 66.9, 70.5),
            (RFT[1], 59.6, 51.3, 43.8, 51.9, 77.6, 75.0, 76.3),
            (RFT[2], 46.1, 38.3, 31.7, 39.4, 70.2, 58.6, 64.4),
            (RFT[3], 53.3, 45.0, 38.7, 46.5, 75.0, 70.8, 72.9),
            (RFT[4], 44.6, 37.3, 31.3, 38.4, 67.8, 57.3, 62.5),
            (RFT[5], 52.6, 44.8, 38.6, 46.2, 73.4, 70.2, 71.8),
        ],
    ),
    *_ra_rows(
        "Table 1",
        "HI-TVGBench",
        [
            ("RaTSG*", 49.9, 43.4, 36.1, 42.1, 64.8, 52.8, 58.8),
            ("NA-VMR*", 40.6, 34.6, 23.7, 31.3, 66.0, 28.0, 47.0),
            ("TimeChat", 8.8, 6.1, 2.5, 6.0, 66.7, 0.0, 33.3),
            ("TimeSuite", 11.6, 6.3, 2.6, 7.9, 66.5, 1.2, 33.9),
            ("TRACE", 11.4, 8.4, 6.3, 9.0, 64.2, 13.3, 38.7),
            (RFT[0], 42.2, 36.8, 31.6, 37.3, 69.9, 59.0, 64.5),
            (RFT[1], 51.6, 46.3, 40.9, 46.6, 70.1, 69.9, 70.0),
            (RFT[2], 42.4, 37.5, 33.3, 38.2, 62.5, 58.8, 60.7),
            (RFT[3], 46.4, 41.3, 36.4, 41.9, 68.9, 65.0, 66.9),
            (RFT[4], 44.4, 39.8, 34.9, 39.6, 64.0, 59.9, 61.9),
            (RFT[5], 48.9, 44.3, 39.4, 44.0, 68.3, 67.1, 67.7),
        ],
    ),
    *_ra_rows(
        "Table 1",
        "HI-Charades",
        [
            ("RaTSG*", _, _, _, _, _, _, _),
            ("NA-VMR*", _, _, _, _, _, _, _),
            ("TimeChat", 25.0, 15.7, 6.4, 15.8, 66.7, 0.0, 33.3),
            ("TimeSuite", 25.8, 16.2, 7.5, 17.3, 66.7, 0.2, 33.4),
            ("TRACE", 18.0, 10.1, 5.1, 12.0, 66.2, 4.2, 35.2),
            (RFT[0], 59.1, 50.9, 40.0, 48.9, 72.8, 63.7, 68.2),
            (RFT[1], 62.4, 55.5, 45.8, 53.1, 72.5, 69.2, 70.8),
            (RFT[2], 56.4, 51.3, 41.1, 46.8, 70.1, 54.6, 62.3),
            (RFT[3], 66.9, 62.3, 52.1, 57.6, 75.3, 71.3, 73.3),
            (RFT[4], 56.9, 50.7, 39.9, 46.4, 70.8, 52.2, 61.5),
            (RFT[5], 66.1, 61.3, 50.2, 56.5, 74.8, 69.7, 72.3),
        ],
    ),
]

# Table 2: evaluation results on the existing Simply-Shuffled RA-VTG datasets.
TABLE_2 = [
    *_ra_rows(
        "Table 2",
        "SS-ActivityNet",
        [
            ("RaTSG*", 68.6, 60.4, 52.7, 60.9, 83.9, 83.9, 83.9),
            ("NA-VMR*", _, _, _, _, _, _, _),
            ("TimeChat", 11.5, 5.9, 2.7, 50.0, 66.7, 0.0, 33.3),
            ("TRACE", 17.8, 13.0, 9.6, 14.7, 65.7, 14.9, 40.3),
            (RFT[0], 65.2, 57.3, 50.0, 58.0, 84.8, 83.6, 83.9),
            (RFT[1], 82.8, 77.8, 70.4, 74.9, 94.8, 95.2, 95.0),
            (RFT[2], 63.2, 56.2, 50.9, 57.9, 86.2, 86.8, 86.5),
            (RFT[3], 65.1, 57.8, 52.3, 59.5, 87.6, 88.9, 88.3),
            (RFT[4], 62.1, 55.2, 50.2, 56.9, 82.3, 84.0, 83.2),
            (RFT[5], 64.7, 57.4, 52.2, 59.2, 86.0, 88.0, 87.0),
        ],
    ),
    *_ra_rows(
        "Table 2",
        "SS-Charades",
        [
            ("RaTSG*", 57.1, 61.6, 68.7, 63.7, 71.2, 77.8, 74.5),
            ("NA-VMR*", 42.0, 48.1, 56.5, 51.2, 76.4, 66.2, 71.3),
            ("TimeChat", 15.3, 9.3, 3.7, 9.8, 66.7, 0.0, 33.3),
            ("TRACE", 19.4, 11.0, 5.5, 12.8, 66.3, 3.5, 34.9),
            (RFT[0], 66.4, 59.0, 49.7, 57.3, 80.4, 78.4, 79.4),
            (RFT[1], 69.8, 63.4, 54.0, 61.0, 80.9, 81.7, 81.3),
            (RFT[2], 69.9, 65.1, 56.0, 61.2, 81.1, 80.2, 80.7),
            (RFT[3], 71.1, 66.4, 58.2, 63.1, 83.1, 83.5, 83.3),
            (RFT[4], 69.9, 64.1, 55.1, 60.6, 81.4, 78.8, 80.1),
            (RFT[5], 71.3, 66.6, 57.6, 63.0, 83.5, 83.6, 83.6),
        ],
    ),
    *_ra_rows(
        "Table 2",
        "SS-QVHighlights",
        [
            ("RaTSG*", _, _, _, _, _, _, _),
            ("NA-VMR*", 85.1, 80.2, 73.4, 77.1, 92.6, 93.2, 92.9),
            ("TimeChat", 6.1, 2.8, 0.8, 4.7, 66.7, 0.0, 33.3),
            ("TRACE", 8.6, 6.7, 5.8, 8.2, 65.5, 16.9, 41.2),
            (RFT[0], 77.7, 72.0, 64.1, 69.2, 91.3, 90.7, 91.0),
            (RFT[1], 82.8, 77.8, 70.4, 74.9, 94.8, 95.2, 95.0),
            (RFT[2], 76.5, 70.8, 62.2, 68.6, 90.5, 91.0, 90.8),
            (RFT[3], 80.3, 73.6, 65.0, 71.5, 92.4, 93.1, 92.8),
            (RFT[4], 72.4, 66.5, 60.4, 65.5, 89.4, 89.9, 89.6),
            (RFT[5], 80.5, 73.8, 64.4, 71.5, 93.7, 94.2, 94.0),
        ],
    ),
]

# Table 3: evaluation results on the Human-Annotated RA-VTG dataset (RA-IoU, F1, explanation quality).
TABLE_3 = [
    PaperRow("Table 3", "Human-Annotated", method, ra=RaIouF1(*values[:7]), explanation=Explanation(*values[7:]))
    for method, *values in [
        ("RaTSG", 32.4, 28.6, 26.4, 30.4, 58.7, 44.9, 51.8, _, _, _),
        ("NA-VMR", 37.0, 33.0, 30.0, 34.4, 52.7, 52.3, 52.5, _, _, _),
        ("TimeChat", 7.0, 4.5, 2.5, 5.4, 66.7, 0.0, 33.3, 0.0, 0.00, 0.00),
        ("TRACE", 16.0, 12.0, 7.5, 12.8, 66.7, 0.0, 33.0, 0.0, 0.00, 0.00),
        (RFT[0], 50.5, 43.0, 35.0, 41.1, 66.1, 48.1, 57.1, 12.0, 0.27, 1.16),
        (RFT[1], 63.0, 59.5, 49.0, 54.8, 74.0, 68.5, 71.2, 19.8, 0.47, 2.13),
        (RFT[2], 47.0, 40.0, 33.5, 37.9, 65.4, 39.7, 52.5, 8.3, 0.22, 0.76),
        (RFT[3], 57.5, 50.0, 40.5, 48.2, 70.9, 63.3, 67.1, 15.8, 0.43, 1.64),
        (RFT[4], 44.5, 39.0, 31.5, 36.9, 65.9, 45.5, 55.7, 7.3, 0.25, 1.00),
        (RFT[5], 52.5, 45.5, 38.5, 43.7, 68.4, 59.4, 63.9, 14.8, 0.38, 1.51),
    ]
]


def _level_rows(table: str, dataset: str, rows: list[tuple]) -> list[PaperRow]:
    return [PaperRow(table, dataset, method, levels=LevelScores(*values)) for method, *values in rows]


# Tables 6, 10, 11: performance across levels of hard-irrelevance (F1, LLM score per level).
TABLE_6 = _level_rows(
    "Table 6",
    "HI-ActivityNet",
    [
        ("RaTSG", 31.8, _, 42.2, _, 47.9, _),
        (RFT[0], 60.0, 1.59, 77.5, 2.19, 86.3, 2.38),
        (RFT[1], 70.6, 2.09, 86.8, 2.63, 93.1, 2.67),
        (RFT[2], 53.0, 1.30, 67.9, 1.83, 78.8, 2.20),
        (RFT[3], 65.9, 1.89, 82.9, 2.56, 89.7, 2.66),
        (RFT[4], 54.7, 1.25, 67.7, 1.79, 77.7, 2.13),
        (RFT[5], 67.6, 1.88, 83.2, 2.52, 90.4, 2.71),
    ],
)
TABLE_10 = _level_rows(
    "Table 10",
    "HI-Charades",
    [
        ("RaTSG", 53.6, _, 66.3, _, 74.5, _),
        (RFT[0], 63.2, 1.68, 73.3, 1.76, 82.8, 1.98),
        (RFT[1], 71.5, 1.95, 82.1, 2.22, 90.0, 2.29),
        (RFT[2], 50.7, 1.19, 65.8, 1.61, 73.3, 1.77),
        (RFT[3], 70.4, 2.09, 84.6, 2.57, 90.3, 2.54),
        (RFT[4], 47.7, 1.08, 59.3, 1.37, 72.1, 2.48),
        (RFT[5], 69.1, 2.00, 82.1, 2.43, 88.5, 2.48),
    ],
)
TABLE_11 = _level_rows(
    "Table 11",
    "HI-TVGBench",
    [
        (RFT[0], 52.5, 0.95, 66.2, 1.49, 78.8, 2.08),
        (RFT[1], 67.5, 1.57, 84.7, 2.20, 91.6, 2.77),
        (RFT[2], 58.0, 0.80, 74.6, 1.29, 80.7, 1.74),
        (RFT[3], 64.1, 1.41, 76.1, 1.82, 85.6, 2.30),
        (RFT[4], 62.4, 1.36, 76.4, 2.05, 77.1, 2.23),
        (RFT[5], 70.1, 1.62, 81.6, 2.03, 85.6, 2.33),
    ],
)

# Table 8: comparison with SFT on HI-VTG (dataset not named; Time-R1 and RA-RFT equal Table 1's HI-ActivityNet).
TABLE_8 = _ra_rows(
    "Table 8",
    None,
    [
        ("Time-R1", 53.0, 45.0, 38.2, 45.9, 74.2, 66.9, 70.5),
        ("Time-R1 + SFT", 29.5, 20.4, 11.8, 20.9, 0.1, 0.0, 0.0),
        ("Time-R1 + RA-RFT (ours)", 59.6, 51.3, 43.8, 51.9, 77.6, 75.0, 76.3),
    ],
)

# Table 12: Qwen2.5-VL-7B trained from scratch (dataset not named).
TABLE_12 = _ra_rows(
    "Table 12",
    None,
    [
        ("Qwen2.5-VL-7B", 32.9, 26.2, 21.2, 27.8, 69.8, 41.2, 55.5),
        ("Qwen2.5-VL-7B + RA-RFT (ours)", 55.4, 48.6, 42.9, 49.6, 75.2, 73.1, 74.2),
    ],
)

ROWS: tuple[PaperRow, ...] = (*TABLE_1, *TABLE_2, *TABLE_3, *TABLE_6, *TABLE_8, *TABLE_10, *TABLE_11, *TABLE_12)


def paper_rows(selection: str) -> list[PaperRow]:
    """The rows of one dataset ("HI-Charades") or of one table ("Table 12"), in table order.

    >>> [row.method for row in paper_rows("Table 12")]
    ['Qwen2.5-VL-7B', 'Qwen2.5-VL-7B + RA-RFT (ours)']
    >>> paper_rows("HI-Charades")[5].ra.f1_avg
    68.2
    """
    if selection in TABLES:
        return [row for row in ROWS if row.table == selection]
    if selection in DATASETS:
        return [row for row in ROWS if row.dataset == selection]
    raise ValueError(f"unknown paper table or dataset {selection!r}; expected one of {[*DATASETS, *TABLES]}")


def _method_key(name: str) -> str:
    return " ".join(name.lower().replace("(ours)", "").replace("*", "").replace("+", " + ").split())


def find_method(rows: list[PaperRow], name: str) -> PaperRow | None:
    """The first of `rows` whose method is `name`, ignoring case, spacing, "(ours)" and the star.

    >>> find_method(paper_rows("HI-Charades"), "time-r1 +RA-RFT").method
    'Time-R1 + RA-RFT (ours)'
    """
    return next((row for row in rows if _method_key(row.method) == _method_key(name)), None)

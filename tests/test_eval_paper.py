"""The paper's typed-in tables: a few numbers pinned against the paper's text, their shape, and the
shipped files recognised by content."""

import pytest

from rarft_eval.paper import DATASETS, ROWS, SHIPPED_DATASETS, TABLES, find_method, paper_rows
from rarft_plugin.io_utils import file_sha256


def row(table, dataset, method):
    (found,) = [r for r in ROWS if (r.table, r.dataset, r.method) == (table, dataset, method)]
    return found


@pytest.mark.parametrize(
    "table, dataset, method, column, value",
    [
        # numbers read off the paper by hand, one or more per table
        ("Table 1", "HI-ActivityNet", "RaTSG*", "r05", 31.91),  # printed with two decimals
        ("Table 1", "HI-Charades", "Time-R1 + RA-RFT (ours)", "f1_avg", 70.8),
        ("Table 1", "HI-Charades", "VideoChat-R1", "f1_irrel", 54.6),
        ("Table 1", "HI-TVGBench", "NA-VMR*", "f1_irrel", 28.0),
        ("Table 1", "HI-Charades", "NA-VMR*", "miou", None),
        ("Table 2", "SS-Charades", "Time-R1", "r03", 66.4),
        ("Table 2", "SS-QVHighlights", "VideoChat-R1-think + RA-RFT (ours)", "f1_avg", 94.0),
        ("Table 2", "SS-ActivityNet", "TimeChat", "miou", 50.0),  # as printed
        ("Table 3", "Human-Annotated", "Time-R1 + RA-RFT (ours)", "r07", 49.0),
        ("Table 8", None, "Time-R1 + SFT", "f1_rel", 0.1),
        ("Table 12", None, "Qwen2.5-VL-7B + RA-RFT (ours)", "miou", 49.6),
    ],
)
def test_ra_iou_and_f1_numbers(table, dataset, method, column, value):
    assert getattr(row(table, dataset, method).ra, column) == value


@pytest.mark.parametrize(
    "table, dataset, method, column, value",
    [
        ("Table 3", "Human-Annotated", "Time-R1", "sbert", 0.27),
        ("Table 3", "Human-Annotated", "VideoChat-R1-think + RA-RFT (ours)", "llm_score", 1.51),
        ("Table 3", "Human-Annotated", "RaTSG", "rt_iou", None),
    ],
)
def test_explanation_numbers(table, dataset, method, column, value):
    assert getattr(row(table, dataset, method).explanation, column) == value


@pytest.mark.parametrize(
    "table, dataset, method, column, value",
    [
        ("Table 6", "HI-ActivityNet", "Time-R1", "weak_llm", 2.38),  # Table 5 prints 2.39 for the same model
        ("Table 10", "HI-Charades", "Time-R1 + RA-RFT (ours)", "strong_f1", 71.5),
        ("Table 10", "HI-Charades", "RaTSG", "moderate_llm", None),
        ("Table 11", "HI-TVGBench", "VideoChat-R1-think", "weak_f1", 77.1),
    ],
)
def test_level_numbers(table, dataset, method, column, value):
    assert getattr(row(table, dataset, method).levels, column) == value


@pytest.mark.parametrize(
    "selection, rows",
    [
        ("Table 1", 33),
        ("Table 2", 30),
        ("Table 3", 10),
        ("Table 6", 7),
        ("Table 8", 3),
        ("Table 10", 7),
        ("Table 11", 6),
        ("Table 12", 2),
        ("HI-Charades", 11 + 7),
        ("Human-Annotated", 10),
        ("SS-Charades", 10),
    ],
)
def test_every_table_is_complete(selection, rows):
    assert len(paper_rows(selection)) == rows


def test_rows_are_unique_and_in_range():
    keys = [(r.table, r.dataset, r.method) for r in ROWS]
    assert len(keys) == len(set(keys)) and {r.table for r in ROWS} == set(TABLES)
    assert {r.dataset for r in ROWS} - {None} == set(DATASETS)
    for r in ROWS:
        for value in [
            *(r.ra or ()),
            *(r.explanation[:1] if r.explanation else ()),
            *(r.levels[::2] if r.levels else ()),
        ]:
            assert value is None or 0 <= value <= 100
        for value in [*(r.explanation[1:] if r.explanation else ()), *(r.levels[1::2] if r.levels else ())]:
            assert value is None or 0 <= value <= 5


def test_the_shipped_files_are_recognised_by_content(official_data):
    names = {
        "hi_vtg_charades.json": "HI-Charades",
        "human_anno.json": "Human-Annotated",
        "ss_vtg_charades.json": "SS-Charades",
    }
    assert {SHIPPED_DATASETS[file_sha256(official_data / file)]: file for file in names} == {
        name: file for file, name in names.items()
    }


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Time-R1 + RA-RFT", "Time-R1 + RA-RFT (ours)"),
        ("time-r1", "Time-R1"),
        ("RaTSG", "RaTSG*"),
        ("VideoChat-R1-think+RA-RFT (ours)", "VideoChat-R1-think + RA-RFT (ours)"),
        ("my model", None),
    ],
)
def test_find_method(name, expected):
    found = find_method(paper_rows("HI-Charades"), name)
    assert (found.method if found else None) == expected


def test_unknown_selection():
    with pytest.raises(ValueError, match="unknown paper table or dataset 'Table 99'"):
        paper_rows("Table 99")

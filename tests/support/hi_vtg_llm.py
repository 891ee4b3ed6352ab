"""A scripted LLM that answers the HI-VTG prompts (Tables 13 and 14) validly, for `ChatServer`.

    with ChatServer(hi_vtg_reply) as server: ...

Category extraction answers CATS; generation answers one irrelevant query per plan with the
required `<irrelevant_answer>` and per-category blocks. `generation_reply(overrides)` builds
variants for validation tests. `source_file` writes generic JSONL annotations and `hi_vtg` runs
`rarft-prep hi-vtg` on them against a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rarft_plugin.llm_prompts import CATEGORY_EXTRACTION_SYSTEM
from rarft_plugin.schema import category_tag
from rarft_prep.cli import main as prep
from rarft_prep.hi_vtg import PLANS
from support.openai_server import system_text, user_text

CATS = ["Object/ObjectExistence", "Action/FineGrainedAction", "Scene/SceneExistence"]


def generation_reply(**overrides: dict) -> str:
    """A valid Table 14 answer for the plans of CATS; `overrides` = {difficulty: {field: value}}."""
    out = {}
    for tag, count in PLANS:
        categories = CATS[:count]
        blocks = "".join(f"<{category_tag(c)}>not {c}</{category_tag(c)}>" for c in categories)
        out[tag] = {
            "irrel_query": f"a dog opens a window ({tag})",
            "applied_categories": [{"path": c} for c in categories],
            "reasoning": f"<irrelevant_answer>The video shows a person.</irrelevant_answer>{blocks}",
            "difficulty_tag": tag,
        }
    for tag, changes in overrides.items():
        out[tag].update(changes)
    return json.dumps({"negs": out})


def categories_reply() -> str:
    return json.dumps({"eligible_categories": [{"path": c, "reason": "r"} for c in CATS]})


def is_category_request(request: dict) -> bool:
    return system_text(request) == CATEGORY_EXTRACTION_SYSTEM


def related_query(request: dict) -> str:
    """The relevant query a HI-VTG request is about."""
    return json.loads(user_text(request))["related_query"]


def hi_vtg_reply(request: dict, *, categories: str | None = None, generation: str | None = None) -> str:
    """A valid answer to either HI-VTG prompt (or the given replacement for one stage)."""
    if is_category_request(request):
        return categories or categories_reply()
    return generation or generation_reply()


def numbered_query(index: int) -> str:
    return f"a person does thing number {index}"


def source_file(
    tmp_path: Path, count: int = 6, *, query: Callable[[int], str] = numbered_query, videos: int = 3
) -> Path:
    """Generic JSONL annotations: `count` relevant queries over `videos` videos."""
    rows = [
        {"video": f"v{i % videos}.mp4", "query": query(i), "timestamp": [i, i + 2], "duration": 40}
        for i in range(count)
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def hi_vtg(tmp_path: Path, server, *extra: str, source: Path | None = None, out: Path | None = None) -> int:
    """`rarft-prep hi-vtg` on `source` (default: `source_file(tmp_path)`) into `out` (default: tmp_path/hi.json)."""
    return prep(
        [
            "hi-vtg",
            str(source or source_file(tmp_path)),
            "--format",
            "jsonl",
            "--out",
            str(out or tmp_path / "hi.json"),
            "--base-url",
            server.url,
            "--model",
            "m",
            "--retry-backoff",
            "0.01",
            *extra,
        ]
    )

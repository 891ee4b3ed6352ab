"""A scripted LLM that answers the HI-VTG prompts (Tables 13 and 14) validly, for `ChatServer`.

    with ChatServer(hi_vtg_reply) as server: ...

Category extraction answers CATS; generation answers one irrelevant query per plan with the
required `<irrelevant_answer>` and per-category blocks. `generation_reply(overrides)` builds
variants for validation tests.
"""

from __future__ import annotations

import json

from data_prep.hi_vtg import PLANS
from rarft_plugin.llm_prompts import CATEGORY_EXTRACTION_SYSTEM
from rarft_plugin.schema import category_tag
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

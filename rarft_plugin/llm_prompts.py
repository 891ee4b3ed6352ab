"""The LLM prompts of the paper (Tables 13-16), the one home for every LLM instruction.

The category taxonomy block of each prompt is generated from `rarft_plugin.schema`. The
relevance classifier (`RELEVANCE_SYSTEM`) is ours: the paper's evaluation decides relevance
with an LLM reading the response but does not print that prompt.
"""

from __future__ import annotations

import json

from rarft_plugin.schema import taxonomy_text

__all__ = [
    "CATEGORY_EXTRACTION_SYSTEM",
    "GENERATION_SYSTEM",
    "GENERATION_SUBSTITUTES",
    "RT_IOU_SYSTEM",
    "LLM_SCORE_SYSTEM",
    "RELEVANCE_SYSTEM",
    "messages",
    "rt_iou_messages",
    "llm_score_messages",
    "relevance_messages",
    "category_extraction_messages",
    "generation_messages",
]

# Table 13: semantic relevance category extraction.
CATEGORY_EXTRACTION_SYSTEM = (
    "You are a multi-label classifier for building Video Temporal Grounding (VTG) datasets.\n\n"
    "## Task introduction\n"
    '- The input "related_query" is a valid VTG query.\n'
    "- Do NOT rewrite the query.\n"
    "- Identify category paths that can modify the query into a plausible but video-irrelevant (negative) query.\n"
    "- Select all applicable category paths and briefly justify why each can produce an irrelevant query.\n\n"
    "## Category taxonomy (Parent / Child)\n" + taxonomy_text() + "\n"
    "## Output requirements\n"
    "- Output ONLY the JSON below.\n"
    '- Use exact "Parent/Child" names.\n'
    "- Return all applicable, distinct categories, sorted by diagnostic strength.\n"
    "- Output at least 3 categories whenever possible.\n\n"
    "[OUTPUT JSON]\n"
    '{ "eligible_categories": [ { "path": "Parent/Child", "reason": "<justification>" }, '
    '{ "path": "Parent/Child", "reason": "<justification>" } ] }'
)

# Table 14: hard-irrelevant query and refusal answer generation.
GENERATION_SYSTEM = (
    "You generate hard negative (irrelevant) queries for Video Temporal Grounding (VTG).\n\n"
    "## Purpose\n"
    "- Create irrelevant (negative) queries from valid related queries.\n"
    "- For each negative query, generate structured reasoning that a Video-LLM could output.\n\n"
    "## Task\n"
    "- Input: related_query, reference timestamp, optional video_context, and category-based plans.\n"
    "- For each plan:\n"
    "  1. Edit the related_query ONLY along its categories to produce one irrelevant query.\n"
    "  2. Generate reasoning using the REQUIRED block format: "
    "<irrelevant_answer>...</irrelevant_answer><category1>...</category1><category2>...</category2>...\n"
    "- <irrelevant_answer> block:\n"
    "  * Must state misalignment between the query and the video.\n"
    "  * Strength depends on difficulty (high/medium/easy).\n"
    "- <category> blocks:\n"
    "  * One block per applied category (tag = path lowercased with slashes as underscores).\n"
    "  * Briefly explain why the irrelevant query does not match the video for that category.\n"
    "- Difficulty levels:\n"
    "  - 1 category -> strong\n  - 2 categories -> moderated\n  - 3 categories -> weak\n\n"
    "## Category taxonomy (Parent / Child)\n" + taxonomy_text() + "\n"
    "## Input format\n"
    '- related_query: "<string>"\n'
    '- related_query_timestamp: "<start>-<end>second"\n'
    "- plans: list of 1-3 items, each with difficulty and applied_categories.\n"
    "- video_context:\n"
    "  * A textual description of the video, provided as a string OR a JSON array of strings.\n"
    "  * Each entry may include an associated time range and a natural-language description of what appears "
    "in the video.\n\n"
    "## Output format (JSON only)\n"
    "The model must output a single JSON object. Each difficulty present in the input plans must appear once "
    'under "negs". All fields must be included exactly as shown.\n'
    '{ "negs": { "<difficulty>": { "irrel_query": "<generated negative query>", '
    '"applied_categories": [ { "path": "Parent/Child" } ], '
    '"reasoning": "<irrelevant_answer>...</irrelevant_answer><parent_child>...</parent_child>", '
    '"difficulty_tag": "<difficulty>" } } }'
)

# Ours, appended to Table 14 by `rarft-prep hi-vtg --substitutes`: the words an edit brings in come from
# the dataset's own relevant queries, so that an edited query does not give itself away by the LLM's
# vocabulary (rarft_plugin.leakage measures that).
GENERATION_SUBSTITUTES = (
    "\n\n## Substitute vocabulary\n"
    '- The input holds "substitute_vocabulary": words of real queries of this dataset.\n'
    "- When an edit brings in a new object, action, place or attribute, take its word from "
    "substitute_vocabulary whenever one fits the plan, so that the negative query reads like a real one."
)

# Table 15: RT-IoU category classifier.
RT_IOU_SYSTEM = (
    "You are a strict multi-label classifier.\n"
    "Identify which reasoning categories from the video-text mismatch categories below are used or implied in "
    "a Generated Response that explains why a query is irrelevant to a video.\n"
    "Select all applicable categories according to the meaning expressed in the response.\n\n"
    "## Video-Text Mismatch Categories\n" + taxonomy_text() + "\n"
    "## Rules\n"
    "1. Include a category only if it is clearly supported or implied by the reasoning.\n"
    "2. Multiple categories may apply, but avoid redundant or speculative labels.\n"
    "3. Use only the exact category paths listed above.\n"
    "4. Ignore style, tone, or fluency — focus purely on reasoning content.\n"
    "5. If none apply, return an empty list.\n\n"
    "## Output Format\n"
    "Return only a JSON array of strings containing the selected categories.\n"
    'Examples:\n[ "Object/ObjectExistence", "Attribute/Counting" ]\nIf none apply: []'
)

# Table 16: LLM score (reasoning consistency with the ground truth, 0-5).
LLM_SCORE_SYSTEM = (
    "You are an evaluator designed to assess the reasoning consistency between a Generated Response and a "
    "Ground Truth (GT) Response.\n\n"
    "## TASK:\nYour job is to evaluate how faithfully the Generated Response reproduces the reasoning in the GT "
    "Response.\n\n"
    "## INSTRUCTIONS:\n### Reasoning Consistency Evaluation:\n"
    "- Evaluate how faithfully the Generated Response reproduces the reasoning and justification in the GT Response.\n"
    "- A consistent response must keep the GT's mismatch points, evidence, and contextual explanations. It must not "
    "distort their meaning.\n"
    "- Omissions or contradictions of GT reasoning elements must be penalized.\n"
    "- Extra explanations are allowed if they are logically consistent with the GT.\n"
    "- The reasoning must remain factually and logically compatible with the GT Response.\n"
    "- Do not consider fluency, tone, or paraphrasing style. Focus only on semantic and factual consistency.\n\n"
    "### Scoring Scale (0-5):\nAssign a score between 0 and 5, allowing decimal values, based on how well the "
    "reasoning aligns with the ground-truth reasoning.\n\n"
    "### Evaluation Mindset:\n"
    "- You MUST prioritize factual and logical alignment over stylistic similarity.\n"
    "- Do NOT penalize harmless elaborations.\n"
    "- You MUST penalize any omission or contradiction of GT reasoning.\n"
    "- You MUST NOT assign a score above 4.9 unless reasoning is perfectly consistent.\n\n"
    "## OUTPUT:\nReturn ONLY a Python dictionary literal. No explanations.\n\n"
    "Examples:\n'score': 4.0\n'score': 1.5\n'score': 3.7"
)

# Ours: the relevance classifier of `rarft-eval evaluate --judge llm`.
RELEVANCE_SYSTEM = (
    "You read the response of a video temporal grounding model to a query.\n"
    "Decide whether the response localises the queried event in the video (it gives a time segment as its "
    "answer) or refuses (it says that no segment of the video matches the query).\n"
    "If it localises the event, extract its single best segment in seconds.\n"
    'Return ONLY JSON: {"relevant": true, "start": <seconds>, "end": <seconds>} or '
    '{"relevant": false, "start": null, "end": null}'
)


def messages(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def rt_iou_messages(response: str) -> list[dict]:
    return messages(RT_IOU_SYSTEM, f"Generated Response:\n{response}")


def llm_score_messages(response: str, ground_truth: str) -> list[dict]:
    return messages(LLM_SCORE_SYSTEM, f"Generated Response:\n{response}\n\nGT Response:\n{ground_truth}")


def relevance_messages(query: str, response: str) -> list[dict]:
    return messages(RELEVANCE_SYSTEM, f"Query: {query}\n\nResponse:\n{response}")


def category_extraction_messages(query: str) -> list[dict]:
    return messages(CATEGORY_EXTRACTION_SYSTEM, json.dumps({"related_query": query}, ensure_ascii=False))


def generation_messages(
    query: str,
    timestamp: tuple[float, float],
    plans: list[dict],
    video_context,
    substitutes: list[str] | None = None,
) -> list[dict]:
    """Table 14's messages; with `substitutes`, `GENERATION_SUBSTITUTES` and the words in the input."""
    payload = {
        "related_query": query,
        "related_query_timestamp": f"{timestamp[0]}-{timestamp[1]}second",
        "plans": plans,
        "video_context": video_context,
    }
    if substitutes is None:
        return messages(GENERATION_SYSTEM, json.dumps(payload, ensure_ascii=False))
    payload["substitute_vocabulary"] = substitutes
    return messages(GENERATION_SYSTEM + GENERATION_SUBSTITUTES, json.dumps(payload, ensure_ascii=False))

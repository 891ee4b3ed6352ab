"""The HI-VTG semantic relevance taxonomy and difficulty levels (paper §3.3, Fig. 4-5, Table 13).

This module is the single home of both vocabularies; prompts, dataset builders, labels and
metrics import them from here.
"""

from __future__ import annotations

# Parent/Child path -> short description used in the LLM prompts (paper Table 13).
CATEGORIES: dict[str, str] = {
    "Action/ActionSequence": "Change the temporal ordering of actions.",
    "Action/FineGrainedAction": (
        "Replace an action verb with a visually similar but directionally or temporally distinct one."
    ),
    "Object/ObjectExistence": "Add or remove an identifiable object.",
    "Object/ObjectPartRelation": "Modify part-whole relations or accessory relations.",
    "Object/ObjectSpatialRelation": "Change relative spatial positions of objects.",
    "Object/ObjectMoving": "Change the motion direction or trajectory of an object.",
    "Scene/SceneExistence": "Replace the type of scene.",
    "Scene/SceneTransition": "Change scene order, transition direction, or timing.",
    "Attribute/AttributeValue": "Change intrinsic properties such as color, size, material, shape, or state.",
    "Attribute/Counting": "Change the number of objects or actions.",
    "Attribute/Comparison": "Flip comparative relations such as size or speed.",
}

PARENTS: tuple[str, ...] = ("Action", "Object", "Scene", "Attribute")

# Difficulty of an irrelevant query, by number of edited categories (paper §3.3).
# "original" marks a relevant query; "shuffled" an irrelevant query taken from another video (SS-VTG).
DIFFICULTIES: tuple[str, ...] = ("original", "strong", "moderate", "weak", "shuffled")
CATEGORY_COUNT_BY_DIFFICULTY: dict[str, int] = {"strong": 1, "moderate": 2, "weak": 3}
DIFFICULTY_BY_CATEGORY_COUNT: dict[int, str] = {n: d for d, n in CATEGORY_COUNT_BY_DIFFICULTY.items()}

# Tags used by the released files and the generation prompt (Table 14), mapped to the paper's names.
DIFFICULTY_ALIASES: dict[str, str] = {
    "hard": "strong",
    "high": "strong",
    "medium": "moderate",
    "moderated": "moderate",
    "easy": "weak",
}


def normalize_difficulty(tag: str) -> str:
    """Map a difficulty tag to the paper's vocabulary.

    >>> normalize_difficulty("hard"), normalize_difficulty("moderate")
    ('strong', 'moderate')

    Raises ValueError for an unknown tag.
    """
    key = tag.strip().lower()
    key = DIFFICULTY_ALIASES.get(key, key)
    if key not in DIFFICULTIES:
        known = sorted(set(DIFFICULTIES) | set(DIFFICULTY_ALIASES))
        raise ValueError(f"unknown difficulty {tag!r}; expected one of {known}")
    return key


def category_tag(path: str) -> str:
    """The XML-ish tag of a category in refusal answers (Table 14): lowercased, '/' -> '_'.

    >>> category_tag("Object/ObjectExistence")
    'object_objectexistence'
    """
    return path.lower().replace("/", "_")


def taxonomy_text() -> str:
    """The taxonomy as the Markdown block the paper's prompts embed (Tables 13-16)."""
    lines = []
    for parent in PARENTS:
        lines.append(f"### {parent}")
        lines.extend(f"- {path} — {text}" for path, text in CATEGORIES.items() if path.startswith(parent + "/"))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

"""`rarft-prep hi-vtg`: build HI-VTG from any VTG annotation set with an OpenAI-compatible LLM.

For each relevant query (paper §3.3, Fig. 3):

1. category extraction (Table 13): the applicable semantic relevance categories, top three kept;
2. generation (Table 14): for the plans of 1 / 2 / 3 categories (strong / moderate / weak,
   tagged `hard` / `medium` / `easy` as in the released files), an irrelevant query edited only
   along those categories and its refusal reasoning;
3. validation of every LLM answer (`validate_categories`, `validate_negatives`): valid JSON,
   categories from the taxonomy and the plan, a query different from the original, the
   `<irrelevant_answer>` block and one block per category, and every text as
   `rarft_plugin.schema.text_problem` allows it (LLM output is adversarial: no special-token
   marker such as `<|im_end|>`, no answer tag, no control character, at most 500 characters for
   a query, 2,000 for a refusal, 8,000 for the reasoning). An invalid answer is asked again
   (`--max-attempts`), then the query goes to the rejects file with the reason.

Leakage (`data_prep.debias`): after building, the run prints the text-only leakage check of what
it built (`rarft_plugin.leakage`: how well the query text alone tells the irrelevant queries from
the relevant ones, out-of-fold AUC by video). `--substitutes` offers the LLM, per query, words of
the input's relevant queries drawn at their frequency (`debias.substitute_vocabulary`) to take its
edits' new words from; `--debias AUC` drops, before writing, the irrelevant queries the classifier
finds easiest until its AUC is at most AUC (`rarft-prep debias`; they go to the rejects file).

Output: the released schema (`rarft_plugin.schema`), written by `rarft_plugin.dataset.dump_items`:
one item per relevant query with its relevant entry (its span as `format_span` writes it) and one
entry per difficulty. An irrelevant entry stores the refusal explanation as `a` =
`<answer>…</answer>` (what the explain reward and the SBERT score compare), its categories as `c`,
the full reasoning with its per-category blocks as `reasoning`, and `q_origin` = the relevant
query it was edited from.

Defaults that work with a local server as well as a hosted API: replies are bounded
(`--max-tokens`, `DEFAULT_MAX_TOKENS`); `--concurrency` is, unless given, 16 for a remote endpoint
and for a local one (localhost, 127.x) as many requests as it serves at once (llama.cpp's /props),
else 1 (`rarft_plugin.llm_client.ChatClient.server_parallelism`); one request waits up to
`--timeout` (600 s, the OpenAI client's own default).

Reliability: requests run concurrently (`--concurrency`), retried with backoff on 429 / 5xx /
timeouts / resets; every finished query (item or reject) is appended to a journal in the work
directory and every LLM reply to a cache there, so a run killed at any moment resumes without
losing, duplicating or paying again for finished work; outputs are written atomically at the end.
A run that stops (an error, Ctrl-C) cancels its requests in flight and closes their connections.

What counts as finished: an item, or a reject for what the model answered (invalid after
`--max-attempts`) or for a request the endpoint refused as such (HTTP 400 / 413 / 422, e.g. a
prompt beyond the model's context). A failure of the endpoint itself (unreachable, overloaded past
the retries, bad key or model name) is never a result: the run checks the endpoint before the
first request and stops at the first such failure with a non-zero exit, journals nothing for the
queries it hit, and the next run asks them again. The journal and the reply cache are keyed by the
model, the prompts and the sampling settings, so a run with another `--model` (or temperature,
...) starts afresh instead of reusing answers of the old one. Outputs are written only when every
query is finished; a run that finishes with no item exits non-zero (the rejects file says why,
with each rejected reply next to its reason, and the summary says which reason came most often).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from rarft_plugin import llm_prompts
from rarft_plugin.arguments import add_endpoint_arguments, open_fraction, positive_int
from rarft_plugin.command_files import CommandFiles, Output
from rarft_plugin.dataset import items_text
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import jsonl_text, write_files_atomic
from rarft_plugin.journal import Journal, not_a_journal
from rarft_plugin.llm_client import ChatClient, EndpointError, RequestError
from rarft_plugin.llm_json import UnreadableReply, json_object
from rarft_plugin.schema import (
    CATEGORIES,
    DIFFICULTY,
    HARD_LEVELS,
    JsonValue,
    VtgItem,
    VtgQuery,
    category_tag,
    dump_item,
    format_span,
    parse_item,
    text_problem,
    wrap_answer,
)

from .debias import leakage_step, substitute_vocabulary
from .importers import DURATIONS_HELP, IMPORTERS, QueryRecord, import_records

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PLANS",
    "Invalid",
    "add_arguments",
    "build",
    "build_one",
    "command_files",
    "hi_vtg_item",
    "journal_key",
    "no_item_reason",
    "plans_for",
    "reject_reason_kind",
    "run",
    "settings_key",
    "validate_categories",
    "validate_negatives",
]

# The generation plans (§3.3): a hard-irrelevant level's released tag and its number of edited categories.
PLANS: tuple[tuple[str, int], ...] = tuple((DIFFICULTY[name].tag, DIFFICULTY[name].edited) for name in HARD_LEVELS)


# Reply length limit: room for a Table 14 answer with three plans (a few hundred tokens from a
# model that follows the prompt), and a bound on what a model that runs on costs (a local server
# computes every token of it, even for a request the client has given up).
DEFAULT_MAX_TOKENS = 1024


class Invalid(ValueError):
    """An LLM answer that fails validation; the message is the reject reason."""


def _valid_text(text: str, kind: str, what: str) -> str:
    """`text` if a record may hold it (`schema.text_problem`); Invalid naming `what` else."""
    problem = text_problem(text, kind)
    if problem:
        raise Invalid(f"{what} {problem}")
    return text


def _json_object(reply: str, key: str) -> dict[str, JsonValue]:
    """The reply's JSON object holding `key` (an answer without one is invalid, its reason kept)."""
    try:
        return json_object(reply, (key,))
    except UnreadableReply as error:
        raise Invalid(str(error)) from None


def validate_categories(reply: str) -> list[str]:
    """Top three distinct taxonomy categories of a Table 13 answer."""
    entries = _json_object(reply, "eligible_categories").get("eligible_categories")
    if not isinstance(entries, list) or not entries:
        raise Invalid("no eligible_categories list")
    paths = [e.get("path") if isinstance(e, dict) else e for e in entries]
    unknown = [p for p in paths if p not in CATEGORIES]
    if unknown:
        raise Invalid(f"category not in the taxonomy: {unknown[0]!r}")
    return list(dict.fromkeys(paths))[:3]


def plans_for(categories: list[str]) -> list[dict]:
    return [
        {"difficulty": tag, "applied_categories": categories[:count]}
        for tag, count in PLANS
        if len(categories) >= count
    ]


def validate_negatives(reply: str, plans: list[dict], original_query: str) -> dict[str, dict]:
    """{difficulty: {query, categories, answer, reasoning}} from a Table 14 answer, all plans present."""
    negs = _json_object(reply, "negs").get("negs")
    if not isinstance(negs, dict):
        raise Invalid("no 'negs' object")
    out = {}
    for plan in plans:
        tag, categories = plan["difficulty"], plan["applied_categories"]
        neg = negs.get(tag)
        if not isinstance(neg, dict):
            raise Invalid(f"difficulty {tag!r} missing from negs")
        query = neg.get("irrel_query")
        if not isinstance(query, str) or not query.strip():
            raise Invalid(f"{tag}: empty irrel_query")
        query = _valid_text(" ".join(query.split()), "query", f"{tag}: irrel_query")
        if _normal(query) == _normal(original_query):
            raise Invalid(f"{tag}: irrelevant query equals the original")
        applied = [c.get("path") if isinstance(c, dict) else c for c in neg.get("applied_categories") or []]
        if applied != categories:
            raise Invalid(f"{tag}: applied_categories {applied} differ from the plan {categories}")
        reasoning = neg.get("reasoning")
        if isinstance(reasoning, list):
            reasoning = "".join(str(part) for part in reasoning)
        if not isinstance(reasoning, str):
            raise Invalid(f"{tag}: no reasoning text")
        reasoning = _valid_text(reasoning.strip(), "reasoning", f"{tag}: reasoning")  # bounded before any search
        answer = _valid_text(_block(reasoning, "irrelevant_answer"), "answer", f"{tag}: <irrelevant_answer>")
        if not answer:
            raise Invalid(f"{tag}: no <irrelevant_answer> block")
        for category in categories:
            if not _block(reasoning, category_tag(category)):
                raise Invalid(f"{tag}: no <{category_tag(category)}> block")
        out[tag] = {"query": query, "categories": categories, "answer": answer, "reasoning": reasoning}
    return out


def _block(text: str, tag: str) -> str:
    match = re.search(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def hi_vtg_item(record: QueryRecord, negatives: dict[str, dict]) -> VtgItem:
    """One item of the released schema: the relevant query, then one irrelevant query per plan."""
    queries = [
        VtgQuery(
            query=record.query,
            relevant=True,
            answer=wrap_answer(format_span(record.timestamp)),
            tag=DIFFICULTY["original"].tag,
            query_origin=record.query,
        )
    ]
    for tag, _ in PLANS:
        if tag in negatives:
            neg = negatives[tag]
            queries.append(
                VtgQuery(
                    query=neg["query"],
                    relevant=False,
                    answer=wrap_answer(neg["answer"]),
                    categories=tuple(neg["categories"]),
                    tag=tag,
                    query_origin=record.query,
                    extra={"reasoning": neg["reasoning"]},
                )
            )
    return VtgItem(
        video=record.video,
        query_text=record.query,
        timestamp=record.timestamp,
        queries=tuple(queries),
        duration=record.duration,
        video_start=record.video_start,
        video_end=record.video_end,
        extra={"difficulty": None},
    )  # as the released HI-VTG files carry it


async def build_one(ask, record: QueryRecord, max_attempts: int, substitutes: list[str] | None = None) -> dict:
    """{"item": ...} or {"reject": {reason, reply, ...}} for one relevant query.

    An EndpointError propagates: it says nothing about this query, so it is no result.
    """

    async def validated(messages, check, stage):
        reason, reply = "", None
        for attempt in range(max_attempts):
            try:
                reply = await ask(messages, attempt=attempt)
            except RequestError as error:
                return None, f"{stage}: endpoint refused the request ({error})", None
            try:
                return check(reply), "", reply
            except Invalid as error:
                reason = f"{stage}: {error}"
        return None, reason, reply

    def reject(reason: str, reply: str | None) -> dict:
        return {"reject": {"reason": reason, "reply": reply, "video": record.video, "query": record.query}}

    categories, reason, reply = await validated(
        llm_prompts.category_extraction_messages(record.query), validate_categories, "categories"
    )
    if categories is None:
        return reject(reason, reply)
    plans = plans_for(categories)
    negatives, reason, reply = await validated(
        llm_prompts.generation_messages(record.query, record.timestamp, plans, list(record.video_context), substitutes),
        lambda reply: validate_negatives(reply, plans, record.query),
        "generation",
    )
    if negatives is None:
        return reject(reason, reply)
    return {"item": dump_item(hi_vtg_item(record, negatives))}  # journalled as JSON


def settings_key(chat: ChatClient, max_attempts: int, substitutes: bool = False) -> str:
    """What a finished result depends on besides its query: model, sampling, prompts, attempts."""
    blob = json.dumps(
        {
            "model": chat.model,
            "params": chat.params,
            "json_mode": chat.json_mode,
            "max_attempts": max_attempts,
            "prompts": [llm_prompts.CATEGORY_EXTRACTION_SYSTEM, llm_prompts.GENERATION_SYSTEM]
            + ([llm_prompts.GENERATION_SUBSTITUTES] if substitutes else []),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def journal_key(settings: str, record: QueryRecord) -> str:
    return f"{settings}|{record.key}"


async def build(
    records: list[QueryRecord],
    chat: ChatClient,
    journal: Journal,
    max_attempts: int,
    settings: str,
    substitutes_of: Callable[[QueryRecord], list[str] | None] | None = None,
) -> None:
    """Finish every record not in the journal; the first EndpointError stops the run (and propagates)."""
    todo = [r for r in records if journal_key(settings, r) not in journal]
    if not todo:  # everything finished: the endpoint is not needed, up or down
        return
    await chat.check_endpoint()
    if chat.concurrency is None:
        chat.concurrency, why = await chat.server_parallelism()
        print(f"concurrency {chat.concurrency}: {why} (--concurrency N sets it)", flush=True)
    with tqdm(total=len(records), initial=len(records) - len(todo), desc="hi-vtg", unit="query") as progress:
        async with chat.session() as ask:
            # As many queries at once as requests: each finishes (and is journalled) as soon as it can,
            # instead of every query's first request going before any second one.
            in_flight = asyncio.Semaphore(chat.concurrency)

            async def one(record):
                async with in_flight:
                    substitutes = substitutes_of(record) if substitutes_of else None
                    result = await build_one(ask, record, max_attempts, substitutes)
                await asyncio.to_thread(journal.put, journal_key(settings, record), result)  # fsync off the loop
                progress.update(1)

            tasks = [asyncio.create_task(one(record)) for record in todo]
            try:
                await asyncio.gather(*tasks)  # the first EndpointError (or any error) propagates ...
            finally:
                for task in tasks:  # ... and cancels the queries still in flight (Python 3.10: no TaskGroup)
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


def reject_reason_kind(reason: str) -> str:
    """A reject reason with its lists and quoted values elided, for counting by kind in the summary.

    >>> reject_reason_kind("generation: medium: applied_categories ['X/Y'] differ from the plan ['A/B']")
    'generation: medium: applied_categories [...] differ from the plan [...]'
    """
    return re.sub(r"'[^']*'", "'...'", re.sub(r"\[[^\]]*\]", "[...]", reason))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="VTG annotations")
    parser.add_argument("--format", choices=sorted(IMPORTERS), required=True, help="annotation format (importers)")
    parser.add_argument("--durations", type=Path, default=None, help=DURATIONS_HELP)
    parser.add_argument("--out", type=Path, required=True, help="HI-VTG JSON (released schema) to write")
    parser.add_argument("--rejects", type=Path, default=None, help="default: OUT with .rejects.jsonl")
    parser.add_argument("--work-dir", type=Path, default=None, help="journal + LLM cache (default: OUT.work/)")
    add_endpoint_arguments(parser, model_help="LLM name at that endpoint (the paper: GPT-5-mini)")
    parser.add_argument("--max-items", type=positive_int, default=None, help="only the first N relevant queries")
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=3,
        help="asks per stage before a query is rejected for invalid answers",
    )
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=DEFAULT_MAX_TOKENS,
        help=f"reply length limit in tokens (default {DEFAULT_MAX_TOKENS}: a Table 14 answer takes a few hundred; "
        "a reasoning model such as GPT-5-mini counts its hidden reasoning too: give it 8192 or more)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for one reply (default 600, the OpenAI client's); also how long a busy server "
        "is waited for at the start",
    )
    parser.add_argument(
        "--no-json-mode",
        dest="json_mode",
        action="store_false",
        help="do not ask for response_format json_object (asked by default; a server that "
        "answers HTTP 400 to it is asked without it)",
    )
    parser.add_argument("--retry-backoff", type=float, default=1.0, help="first retry wait, seconds (doubles)")
    parser.add_argument("--dry-run", action="store_true", help="print the prompts of the first query and stop")
    parser.add_argument(
        "--substitutes",
        action="store_true",
        help="offer the LLM words of the input's relevant queries (at their frequency) for the words its edits "
        "bring in, so that edited queries leak less of its vocabulary",
    )
    parser.add_argument(
        "--debias",
        type=open_fraction,
        default=None,
        metavar="AUC",
        help="before writing, drop the irrelevant queries whose text gives them away until the query-only "
        "classifier's out-of-fold AUC is at most AUC (rarft-prep debias; dropped ones go to the rejects file)",
    )


WORK_FILES = ("journal.jsonl", "llm_cache.jsonl")


def foreign_work_files(work: Path) -> str | None:
    """Why an existing work folder is not a hi-vtg one (a journal or cache there that is not one), or None."""
    for name in WORK_FILES:
        reason = not_a_journal(work / name)
        if reason:
            return f"{name} {reason}: not a hi-vtg work folder (--work-dir), so not resumed"
    return None


def output_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(items file, rejects file, work folder) of a run."""
    return (
        args.out,
        args.rejects or args.out.with_suffix(".rejects.jsonl"),
        args.work_dir or args.out.with_name(args.out.name + ".work"),
    )


def command_files(args: argparse.Namespace) -> CommandFiles:
    if args.dry_run:
        return CommandFiles.of(inputs=[args.input, args.durations])
    out, rejects, work = output_paths(args)
    own_work = Output(work, folder=True, entries=WORK_FILES, resumes=foreign_work_files)
    return CommandFiles.of(inputs=[args.input, args.durations], outputs=[out, rejects, own_work])


def run(args: argparse.Namespace) -> int:
    try:
        records, import_rejects = import_records(args.input, args.format, args.durations)
        if not records:
            raise DataError(f"no usable query ({len(import_rejects)} rejected at import)", source=str(args.input))
    except DataError as error:
        print(f"rarft-prep hi-vtg: error: {error}", file=sys.stderr)
        return 2
    records = records[: args.max_items] if args.max_items else records
    relevant_queries = [r.query for r in records]

    def substitutes_of(record: QueryRecord) -> list[str] | None:
        return substitute_vocabulary(relevant_queries, record.query, seed=record.key) if args.substitutes else None

    if args.dry_run:
        first = records[0]
        for message in llm_prompts.category_extraction_messages(first.query):
            print(f"--- {message['role']} ---\n{message['content']}")
        plans = plans_for(list(CATEGORIES)[:3])
        for message in llm_prompts.generation_messages(
            first.query, first.timestamp, plans, list(first.video_context), substitutes_of(first)
        ):
            print(f"--- {message['role']} ---\n{message['content']}")
        print(f"(dry run: {len(records)} queries would be sent, 2 requests each at least)")
        return 0
    if not (args.base_url and args.model):
        print("rarft-prep hi-vtg: error: --base-url and --model are required (or --dry-run)", file=sys.stderr)
        return 2
    _, rejects_path, work = output_paths(args)
    chat = ChatClient(
        base_url=args.base_url,
        model=args.model,
        api_key=args.api_key,
        concurrency=args.concurrency,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        timeout_s=args.timeout,
        json_mode=args.json_mode,
        backoff_s=args.retry_backoff,
        cache_path=work / "llm_cache.jsonl",
    )
    journal = Journal(work / "journal.jsonl")
    settings = settings_key(chat, args.max_attempts, args.substitutes)
    done = sum(journal_key(settings, r) in journal for r in records)
    print(f"{done} queries already finished in {work}/, {len(records) - done} to do")
    try:
        asyncio.run(build(records, chat, journal, args.max_attempts, settings, substitutes_of))
    except EndpointError as error:
        finished = sum(journal_key(settings, r) in journal for r in records)
        print(
            f"rarft-prep hi-vtg: error: the LLM endpoint failed: {error}\n"
            f"  {finished} of {len(records)} queries finished (kept in {work}/); nothing written; "
            "rerun the same command to go on",
            file=sys.stderr,
        )
        return 1
    finally:
        chat.close()
        journal.close()
    results = [journal.get(journal_key(settings, r)) for r in records]
    try:
        items = [parse_item(r["item"], index) for index, r in enumerate(r for r in results if "item" in r)]
    except DataError as error:  # a journal of another version, or edited by hand
        print(
            f"rarft-prep hi-vtg: error: a journalled item in {work}/ is invalid ({error}); remove that folder "
            "to build afresh",
            file=sys.stderr,
        )
        return 1
    rejects = import_rejects + [{"stage": "llm", **r["reject"]} for r in results if "reject" in r]
    if items:
        items, leakage_rejects = leakage_step(items, args.debias)
        rejects += leakage_rejects
    write_files_atomic({rejects_path: jsonl_text(rejects), **({args.out: items_text(items)} if items else {})})
    usage = chat.usage
    by_reason = Counter(f"{r['stage']}: {reject_reason_kind(r['reason'])}" for r in rejects)
    print(
        f"items: {len(items)} of {len(records)} queries written to {args.out if items else '(nothing)'}; "
        f"rejects: {len(rejects)} -> {rejects_path}"
    )
    for reason, count in by_reason.most_common():
        print(f"  {count:6d}  {reason}")
    print(
        f"requests: {usage.requests} (cached {usage.cached}, retries {usage.retries}); "
        f"tokens: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
        + ("; the server refused JSON mode: asked without it" if usage.json_mode_refused else "")
        + (f"; {usage.truncated} replies cut at --max-tokens {args.max_tokens}" if usage.truncated else "")
    )
    if not items:
        print(f"rarft-prep hi-vtg: error: {no_item_reason(by_reason, len(records), usage.truncated)}", file=sys.stderr)
        print(f"  the reasons and the model's replies are in {rejects_path}", file=sys.stderr)
        return 1
    return 0


def no_item_reason(by_reason: Counter, queries: int, truncated: int = 0) -> str:
    """Why a run built nothing, for the one error line: the commonest reason, and what it suggests.

    >>> no_item_reason(Counter({'llm: generation: no JSON object with the key "negs" in the reply': 4}), 4)
    'no item built from 4 queries; most often (4): llm: generation: no JSON object with the key "negs" in the reply; \
the model may be too small to follow the prompts (Tables 13-14): try a larger one'
    """
    if not by_reason:
        return f"no item built from {queries} queries"
    reason, count = by_reason.most_common(1)[0]
    text = f"no item built from {queries} queries; most often ({count}): {reason}"
    if truncated:
        text += f"; {truncated} replies were cut at the length limit: raise --max-tokens"
    elif reason.startswith("llm:") and "endpoint refused" not in reason:
        text += "; the model may be too small to follow the prompts (Tables 13-14): try a larger one"
    return text

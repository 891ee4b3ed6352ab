"""The next step's clips, decoded while the current step trains (wired into OpenRLHF by `launch.upstream`).

A step's rollouts wait for their clips: on an H100 with 16 distinct paper-size clips a step, video preparation was
22 % of the step (docs/gpu.md, "Paper scale"), all of it before vLLM could start. The dataset order is fixed once the
loader's iterator exists, so the trainer can read the next step's prompts from it ahead of time (`Lookahead`) and
send each to the engine that will get it (`engine_of`), which decodes it in the background
(`openrlhf_agent.AgentExecutor`'s prefetch request, `prefetch_request`) while make_experience and ppo_train run.
A prefetched clip is the executor's cache entry, so the rollout reads the same frames and tensors it would have made;
a clip sent to the wrong engine, or evicted, is decoded on demand as without prefetch.

The loader's checkpoint state must not count the prompts read ahead: `Lookahead` keeps the loader's state from
before each prompt it read ahead, and `state_dict` returns the state of the first one not yet consumed, so a resumed
run starts at the same prompt as one without prefetch.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["PREFETCH_ENV", "SWITCH", "Lookahead", "engine_of", "prefetch_enabled", "prefetch_env", "prefetch_request"]

# 0 / false / no / off turns the prefetch off (the default is on: it changes what a step waits for, not what it
# computes).
PREFETCH_ENV = "RARFT_PREFETCH"


SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def prefetch_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether $RARFT_PREFETCH leaves the prefetch on (unset or empty: on). A value outside `SWITCH` is a
    ValueError naming the variable (rarft-train refuses it before Ray starts: `prefetch_env`)."""
    value = (os.environ if env is None else env).get(PREFETCH_ENV, "").strip().lower()
    if value and value not in SWITCH:
        raise ValueError(f"{PREFETCH_ENV} must be one of {', '.join(SWITCH)} (or unset: on), not {value!r}")
    return SWITCH.get(value, True)


def prefetch_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`{RARFT_PREFETCH: "1" | "0"}` when the variable is set (checked), for the Ray worker that runs the trainer;
    else {}."""
    env = os.environ if env is None else env
    if not env.get(PREFETCH_ENV, "").strip():
        return {}
    return {PREFETCH_ENV: "1" if prefetch_enabled(env) else "0"}


class Lookahead:
    """An iterator over a stateful loader's iterator that can read ahead without moving the loader's resume point.

    `peek(n)` reads up to n items ahead (fewer at the end); iteration returns them first. `state_dict()` is the
    loader's state as if nothing had been read ahead: the state saved before the first item not yet consumed.

    >>> look = Lookahead(iter("abc"), state_of=lambda: "s")
    >>> look.peek(2), next(look), look.peek(5), list(look)
    (['a', 'b'], 'a', ['b', 'c'], ['b', 'c'])
    """

    def __init__(self, iterator: Iterator, state_of: Callable[[], Any]):
        self._iterator = iterator
        self._state_of = state_of
        self._ahead: deque[tuple[Any, Any]] = deque()  # (item, the loader's state before it was read)

    def __iter__(self) -> Lookahead:
        return self

    def __next__(self) -> Any:
        if self._ahead:
            return self._ahead.popleft()[0]
        return next(self._iterator)

    def peek(self, count: int) -> list:
        while len(self._ahead) < count:
            state = self._state_of()
            try:
                item = next(self._iterator)
            except StopIteration:
                break
            self._ahead.append((item, state))
        return [item for item, _ in list(self._ahead)[:count]]

    def state_dict(self) -> Any:
        """The loader's state to resume from: before the first item read ahead and not consumed, else its own."""
        return self._ahead[0][1] if self._ahead else self._state_of()


def engine_of(index: int, engines: int) -> int:
    """The engine OpenRLHF 0.11.2 sends the `index`-th prompt of a step to when every engine starts the step idle
    (`SamplesGenerator._dispatch_prompts_to_vllm`: a heap of (pending rollouts, engine), each prompt to the least
    loaded, ties to the lower index, each adding G): round robin. Where the engines are not idle (asynchronous
    training) the guess can miss; a miss decodes on demand.

    >>> [engine_of(i, 3) for i in range(7)]
    [0, 1, 2, 0, 1, 2, 0]
    """
    return index % engines


def prefetch_request(prompt: str, label: str, video: Any, processor: Any, count: int) -> dict:
    """The keyword arguments of `RolloutRayActor.generate_responses` that ask its executor to prepare one clip and
    return at once, without a rollout: `sampling_params=None` (OpenRLHF always sends vLLM's `SamplingParams`)
    marks the request, `max_length` carries how many clips this engine is sent for the step (the executor keeps
    that many prepared), `num_samples=1` calls the executor once."""
    return {
        "prompt": prompt,
        "label": label,
        "sampling_params": None,
        "max_length": count,
        "hf_tokenizer": processor,
        "num_samples": 1,
        "images": video,
    }

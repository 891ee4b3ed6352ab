"""A small ChatML tokenizer and a scripted engine for OpenRLHF's text executor (tests only; no hub)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def chatml_tokenizer(texts: Sequence[str]):
    """A byte-level BPE ChatML tokenizer trained on `texts` (and the chat words), built locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator([*texts, "user assistant system video query answer think correct"], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=SPECIALS
    )


class ScriptedEngine:
    """Stands in for a vLLM engine actor: returns a scripted response as token ids."""

    def __init__(self, tokenizer, text: str, finish_reason: str = "stop"):
        self.tokenizer, self.text, self.finish_reason = tokenizer, text, finish_reason

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        ids = self.tokenizer(self.text + "<|im_end|>", add_special_tokens=False)["input_ids"]
        output = SimpleNamespace(token_ids=ids, text=self.text, logprobs=None, finish_reason=self.finish_reason)
        return SimpleNamespace(outputs=[output])


def chat_prompt(query: str) -> str:
    return f"<|im_start|>user\nFind the moment: {query}.<|im_end|>\n<|im_start|>assistant\n"


def run_text_executor(tokenizer, response: str, label: str, prompt: str, *, finish_reason: str = "stop") -> dict:
    """One rollout through OpenRLHF's own SingleTurnAgentExecutor with rarft's reward file loaded by its loader."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    from rarft_plugin.paths import plugin_path

    executor = SingleTurnAgentExecutor(remote_rm_url=str(plugin_path("reward")))
    params = SimpleNamespace(max_tokens=256, logprobs=None)
    engine = ScriptedEngine(tokenizer, response, finish_reason)
    return asyncio.run(executor.execute(prompt, label, params, 4096, tokenizer, engine))

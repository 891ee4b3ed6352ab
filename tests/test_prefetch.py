"""The next step's clips prepared ahead (`rarft_plugin.launch.prefetch`, wired by `launch.upstream`): through
OpenRLHF 0.11.2's own `SamplesGenerator.generate_samples` and torchdata's `StatefulDataLoader`, with engines that
record what they are sent. The executor's side (a prefetched clip is the rollout's cache entry) is in
tests/test_openrlhf_agent.py."""

from __future__ import annotations

import logging
import types
from types import SimpleNamespace

import pytest
from support.import_stand_ins import install_import_stand_ins

from rarft_plugin.launch.prefetch import Lookahead, prefetch_enabled
from rarft_plugin.launch.upstream import TRAINER_MODULE, patch_trainer, prefetch_next_step, report_task_in_trainer_logs

install_import_stand_ins()


@pytest.fixture(scope="module")
def trainer_module():
    """OpenRLHF's trainer module as rarft-train's Ray worker hook leaves it."""
    import importlib

    report_task_in_trainer_logs()
    module = importlib.import_module(TRAINER_MODULE)
    assert hasattr(module.SamplesGenerator.generate_samples, "__wrapped__")
    return module


def prompt_loader(count: int, seed: int = 0):
    """OpenRLHF's prompt loader as `prepare_datasets` makes it: batches of one (datasource, prompt, label, video),
    shuffled by a seeded sampler, stateful."""
    import torch
    from torchdata.stateful_dataloader import StatefulDataLoader

    rows = [("hi", f"prompt {i}", f"label {i}", f"video {i}") for i in range(count)]

    def collate(batch):
        return tuple(list(column) for column in zip(*batch, strict=True))

    generator = torch.Generator().manual_seed(seed)
    return StatefulDataLoader(rows, batch_size=1, shuffle=True, generator=generator, collate_fn=collate)


def rest_of(loader, state) -> list[str]:
    """The prompts a run resumed from `state` reads."""
    loader.load_state_dict(state)
    return [batch[1][0] for batch in loader]


# consumed per step (a dynamic-filtering step draws extra prompts one by one), prompts read ahead after each step
STEPS = {
    "plain": ([4, 4, 4], 4),
    "read-ahead-then-one-more": ([4, 5, 3], 4),
    "past-the-end": ([4, 4, 2], 4),
    "read-ahead-short": ([4, 4, 4], 2),
}


@pytest.mark.parametrize("case", STEPS)
def test_a_checkpoint_taken_with_prompts_read_ahead_resumes_at_the_same_prompt(case):
    from openrlhf.trainer.ppo_utils.samples_generator import _collect_prompt_batch

    takes, ahead = STEPS[case]
    plain, looked = prompt_loader(14), prompt_loader(14)
    plain_iter = iter(plain)
    look = Lookahead(iter(looked), looked.state_dict)
    consumed = 0
    for take in takes:
        expected = _collect_prompt_batch(plain_iter, take)[0]
        assert _collect_prompt_batch(look, take)[0] == expected
        consumed += len(expected)
        assert len(look.peek(ahead)) == min(ahead, 14 - consumed)
        assert rest_of(prompt_loader(14), look.state_dict()) == rest_of(prompt_loader(14), plain.state_dict())


@pytest.mark.parametrize(("rows", "engines"), [(16, 1), (16, 2), (16, 8), (5, 3), (3, 8)])
def test_each_prompt_is_prefetched_on_the_engine_that_then_generates_it(trainer_module, monkeypatch, rows, engines):
    """Two steps of OpenRLHF's own generate_samples: every prompt of the second step went, during the first, as a
    prefetch request to the engine its rollouts then ran on; the loader's checkpoint state is the one a run without
    prefetch saves."""
    from openrlhf.trainer.ppo_utils import samples_generator

    calls = []

    class Engine:
        def __init__(self, index):
            self.get_num_unfinished_requests = SimpleNamespace(remote=lambda: 0)
            self.generate_responses = SimpleNamespace(remote=lambda **kw: calls.append((index, kw)) or [kw["prompt"]])

    # Ray as the generator uses it, on plain values; an experience per response
    monkeypatch.setattr(samples_generator, "ray", SimpleNamespace(get=lambda x: x, wait=lambda r, **_: (r[:1], r[1:])))
    monkeypatch.setattr(samples_generator.SamplesGenerator, "_process_response_into_experience", lambda s, r, **_: r)
    monkeypatch.delenv("RARFT_PREFETCH", raising=False)
    args = SimpleNamespace(
        rollout=SimpleNamespace(batch_size=rows, n_samples_per_prompt=2),
        vllm=SimpleNamespace(enable_sleep=False),
        algo=SimpleNamespace(dynamic_filtering_enable=False, advantage=SimpleNamespace(is_correction_level="off")),
    )
    loader, plain = prompt_loader(3 * rows), prompt_loader(3 * rows)
    generator = samples_generator.SamplesGenerator(
        SimpleNamespace(args=args), loader, None, "processor", [Engine(i) for i in range(engines)]
    )
    plain_iter = iter(plain)
    dispatched, prefetched = [], []
    for step in range(2):
        calls.clear()
        generator.generate_samples(max_new_tokens=8, n_samples_per_prompt=1)
        dispatched.append({kw["prompt"]: i for i, kw in calls if kw["sampling_params"] is not None})
        prefetched.append({kw["prompt"]: i for i, kw in calls if kw["sampling_params"] is None})
        assert sorted(dispatched[step]) == sorted(samples_generator._collect_prompt_batch(plain_iter, rows)[0])
        assert rest_of(prompt_loader(3 * rows), loader.state_dict()) == rest_of(
            prompt_loader(3 * rows), plain.state_dict()
        )
    assert prefetched[0] == dispatched[1] and len(prefetched[0]) == rows
    requests = [kw for _, kw in calls if kw["sampling_params"] is None]
    per_engine = {i: sum(1 for p in prefetched[1].values() if p == i) for i in range(engines)}
    assert all(kw["max_length"] == per_engine[prefetched[1][kw["prompt"]]] for kw in requests)
    assert {kw["hf_tokenizer"] for kw in requests} == {"processor"} and {kw["num_samples"] for kw in requests} == {1}


def recording_generator(prompts: int, engines: int, batch: int):
    """What `prefetch_next_step` reads of OpenRLHF's `SamplesGenerator`, its engines recording the requests:
    (generator, its loader, the requests)."""
    calls = []
    engine = SimpleNamespace(generate_responses=SimpleNamespace(remote=lambda **kw: calls.append(kw)))
    loader = prompt_loader(prompts)
    generator = SimpleNamespace(
        _dataloader_iter=iter(loader),
        prompts_dataloader=loader,
        vllm_engines=[engine] * engines,
        tokenizer="processor",
        args=SimpleNamespace(rollout=SimpleNamespace(batch_size=batch)),
    )
    return generator, loader, calls


def test_the_last_step_of_an_epoch_prefetches_nothing_and_the_next_epoch_starts_clean(trainer_module, monkeypatch):
    generator, loader, _ = recording_generator(prompts=4, engines=1, batch=4)
    assert prefetch_next_step(generator) == 4
    list(generator._dataloader_iter)  # the step consumes them; the loader is exhausted
    assert prefetch_next_step(generator) == 0
    generator._dataloader_iter = None  # OpenRLHF's generator drops the exhausted iterator
    assert prefetch_next_step(generator) == 0
    generator._dataloader_iter = iter(loader)  # the next epoch's
    assert loader.state_dict() == type(loader).state_dict(loader)
    assert prefetch_next_step(generator) == 4


def test_under_ray_the_processor_goes_to_the_object_store_once_a_run(monkeypatch):
    import ray

    stored = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "put", lambda value: stored.append(value) or f"ref{len(stored)}")
    generator, _, calls = recording_generator(prompts=8, engines=2, batch=2)
    for _ in range(3):
        assert prefetch_next_step(generator) == 2
        next(generator._dataloader_iter), next(generator._dataloader_iter)  # the step consumes its two prompts
    assert stored == ["processor"] and {kw["hf_tokenizer"] for kw in calls} == {"ref1"} and len(calls) == 6


class _Generator:
    def generate_samples(self, **kwargs):
        return "samples"


@pytest.mark.parametrize(
    ("env", "fails", "prefetches", "warns"),
    [({}, False, 1, False), ({"RARFT_PREFETCH": "0"}, False, 0, False), ({}, True, 1, True)],
    ids=["on", "off", "prefetch-fails"],
)
def test_the_wrapped_generate_samples_returns_its_samples_whatever_the_prefetch_does(
    monkeypatch, caplog, env, fails, prefetches, warns
):
    from rarft_plugin.launch import upstream

    sent = []

    def prefetch(generator):
        sent.append(generator)
        if fails:
            raise RuntimeError("engine gone")
        return 3

    module = types.SimpleNamespace(
        compute_eval_metrics=lambda *a: {},
        BasePPOTrainer=type("BasePPOTrainer", (), {"train_step": lambda self, s, g: ({}, g)}),
        SamplesGenerator=type("SamplesGenerator", (_Generator,), {}),
    )
    patch_trainer(module)
    patch_trainer(module)  # once only
    monkeypatch.setattr(upstream, "prefetch_next_step", prefetch)
    monkeypatch.delenv("RARFT_PREFETCH", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="openrlhf.rarft"):
        assert module.SamplesGenerator().generate_samples(max_new_tokens=8) == "samples"
    assert len(sent) == prefetches
    assert ("engine gone" in caplog.text) == warns


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, True),
        ("", True),
        ("1", True),
        ("0", False),
        ("off", False),
        (" False", False),
        ("yes", True),
        ("2", None),
    ],
)
def test_rarft_prefetch_is_a_switch(value, on):
    env = {} if value is None else {"RARFT_PREFETCH": value}
    if on is None:
        with pytest.raises(ValueError, match="RARFT_PREFETCH must be one of"):
            prefetch_enabled(env)
        return
    assert prefetch_enabled(env) is on

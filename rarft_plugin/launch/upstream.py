"""What rarft-train does only because OpenRLHF 0.11.2 (the version pyproject.toml pins) lacks it.

Each piece says what upstream lacks and what would make it unnecessary. None of them is needed by a
version that provides the missing piece: on an OpenRLHF upgrade, check each and delete what it makes
redundant (tests/test_train.py pins each piece's behaviour).

1. `forwarding_worker_env`: variables and a setup hook (`setup_worker`) for every Ray worker;
2. `openrlhf_arguments`: train_ppo_ray's argument handling without training;
3. `gpu_module_stand_ins`: that argument handling on a machine without vLLM / flash-attn;
4. `complete_saved_processors`: loadable vision-language checkpoints;
5. `report_task_in_trainer_logs`: the task metrics at each evaluation and the exploit monitors at each step;
6. `_with_prefetch` (installed with 5): the next step's clips decoded while the current step trains.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

__all__ = [
    "GPU_ONLY_MODULES",
    "OPENRLHF_MODULE",
    "TRAINER_MODULE",
    "WORKER_SETUP_HOOK",
    "complete_saved_processors",
    "forwarding_worker_env",
    "gpu_module_stand_ins",
    "openrlhf_arguments",
    "patch_trainer",
    "prefetch_next_step",
    "report_task_in_trainer_logs",
    "rollouts_of",
    "setup_worker",
    "trainer_patch_pending",
    "with_worker_env",
]

OPENRLHF_MODULE = "openrlhf.cli.train_ppo_ray"

# ---------------------------------------------------------------- 1. the Ray workers' environment
# Upstream lacks: a way to give Ray workers environment variables or a setup hook. train_ppo_ray calls
# `ray.init(runtime_env={"env_vars": {three of its own}})`, and workers of a cluster started beforehand
# (`ray start`) do not inherit the launcher's environment, so the reward options would not reach the
# rollout workers. rarft-train runs train_ppo_ray in its own process (`rarft_plugin.launch.run`) with
# ray.init wrapped to add them. Unnecessary once train_ppo_ray takes a runtime env (env_vars and
# worker_process_setup_hook) from its command line; 0.11.2 has no such flag.

# Every Ray worker of a run (policy, reference, vLLM engines, the trainer) runs this first (`setup_worker`).
WORKER_SETUP_HOOK = "rarft_plugin.launch.upstream.setup_worker"


def setup_worker() -> None:
    """rarft-train's Ray worker setup hook: transformers 5.x computes Qwen2.5-VL video positions unlike vLLM, so
    training would score other positions than the rollouts sampled (`rarft_plugin.models`: each model family
    installs what its models need); without flash-attn its Qwen2.5-VL vision tower attends window by window
    (`rarft_plugin.models.window_attention` batches the windows); and the trainer's logs report the task (section 5)."""
    from rarft_plugin.models import use_reference_video_positions
    from rarft_plugin.models.window_attention import use_grouped_window_attention

    use_reference_video_positions()
    use_grouped_window_attention()
    report_task_in_trainer_logs()


def with_worker_env(runtime_env: dict | None, env: dict[str, str]) -> dict:
    """A copy of a ray.init runtime_env with `env` added to its env_vars (ours win: they were validated) and
    rarft's worker setup hook (a hook the runtime_env already names is kept).

    >>> with_worker_env({"env_vars": {"NCCL_DEBUG": "WARN"}}, {"RARFT_VARIANT": "paper"})["env_vars"]
    {'NCCL_DEBUG': 'WARN', 'RARFT_VARIANT': 'paper'}
    """
    merged = dict(runtime_env or {})
    merged["env_vars"] = {**merged.get("env_vars", {}), **env}
    merged.setdefault("worker_process_setup_hook", WORKER_SETUP_HOOK)
    return merged


@contextlib.contextmanager
def forwarding_worker_env(env: dict[str, str]) -> Iterator[None]:
    """While active, every ray.init call adds `env` (and the setup hook) to the runtime environment it is given."""
    import ray

    original = ray.init

    def init(*args: object, runtime_env: dict | None = None, **kwargs: object) -> object:
        return original(*args, runtime_env=with_worker_env(runtime_env, env), **kwargs)

    ray.init = init
    try:
        yield
    finally:
        ray.init = original


# ---------------------------------------------------------------- 2. argument handling without training
# Upstream lacks: a parser or argument-checking function. train_ppo_ray builds its parser, fixes up and
# asserts its arguments inside `if __name__ == "__main__":`, a block that ends with `train(args)`, so the
# only way to check a command without starting Ray is to run that block's source without its last call.
# Unnecessary once train_ppo_ray exposes its parser and checks as a function; 0.11.2 does not.


def openrlhf_arguments(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, SimpleNamespace]:
    """train_ppo_ray's own argument handling on argv (its parser, fix-ups and assertions), without training.

    Runs the installed module's source with its final `train(args)` call left out and returns
    (parser, args). Its imports load the trainer, which imports vllm and flash_attn: where those are
    not installed, stand-ins take their place meanwhile (`gpu_module_stand_ins`). A parse error
    raises SystemExit as the module does; a failed check raises AssertionError.
    """
    spec = importlib.util.find_spec(OPENRLHF_MODULE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{OPENRLHF_MODULE} is not installed (pip install openrlhf==0.11.2)")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"), spec.origin)
    block = tree.body[-1]
    if not (_is_main_guard(block) and _calls(block.body[-1], "train")):
        raise RuntimeError(
            f"{spec.origin}: no `if __name__ == '__main__': ... train(args)` block; "
            "rarft-train supports the layout of openrlhf 0.11"
        )
    block.body.pop()
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": spec.origin}
    saved = sys.argv
    sys.argv = [spec.origin, *argv]
    try:
        with gpu_module_stand_ins():
            exec(compile(tree, spec.origin, "exec"), namespace)
    finally:
        sys.argv = saved
    return namespace["parser"], namespace["args"]  # what the block assigns


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'


def _calls(node: ast.stmt, function: str) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == function
    )


# ---------------------------------------------------------------- 3. GPU-only imports on a CPU machine
# Upstream lacks: a train_ppo_ray module that loads without a GPU stack. It imports the trainer, which
# imports vllm and flash_attn.bert_padding at module load; both install only with CUDA. To check a
# command on a CPU machine (--rarft.dry_run, the recipes' tests) the parser is built with stand-ins
# that carry names, not behaviour. Unnecessary once those imports move inside the functions that use
# them (or the parser moves out of the trainer's import chain); 0.11.2 imports both at module load.
GPU_ONLY_MODULES = ("vllm", "flash_attn")


class _Unavailable:
    """What a stand-in module hands out for any name: usable in imports and class bodies, never called."""

    def __init__(self, *args: object, **kwargs: object):
        raise RuntimeError(
            f"{type(self).__qualname__} is a stand-in for argument checking; the real package is not installed here"
        )


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so its submodules (vllm.inputs, flash_attn.bert_padding) load too
        module.__version__ = "0"

        def attribute(name: str) -> type:  # PEP 562: every other name is a class that refuses to be used
            if name.startswith("__"):
                raise AttributeError(name)
            return type(f"{module.__name__}.{name}", (_Unavailable,), {})

        module.__getattr__ = attribute


class _StandInFinder(importlib.abc.MetaPathFinder):
    def __init__(self, roots: Sequence[str]):
        self.roots = set(roots)

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] not in self.roots:
            return None
        return importlib.machinery.ModuleSpec(name, _StandInLoader(), is_package=True)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:  # absent, or present but unusable here (a flash-attn built without CUDA kernels)
        return False
    return True


@contextlib.contextmanager
def gpu_module_stand_ins() -> Iterator[list[str]]:
    """While active, `import vllm` / `import flash_attn...` give stand-ins where the real ones do not import.

    On exit they leave sys.modules, with every openrlhf module imported meanwhile (those hold
    references to them), so later imports see the machine as it is. Yields the stand-in roots
    (empty where the real modules import).
    """
    roots = [name for name in GPU_ONLY_MODULES if not _importable(name)]
    if not roots:
        yield []
        return
    before = set(sys.modules)
    finder = _StandInFinder(roots)
    sys.meta_path.append(finder)
    try:
        yield roots
    finally:
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            if name.split(".")[0] in (*roots, "openrlhf"):
                del sys.modules[name]


# ---------------------------------------------------------------- 4. processor files in saved checkpoints
# Upstream lacks: saving a vision-language model's processor. OpenRLHF saves the policy with its
# tokenizer only (no processor configuration), so neither `rarft-eval infer` nor a later
# `--actor.model_name_or_path` could load the checkpoint's processor. Unnecessary once OpenRLHF's
# save_model writes the processor of a vision-language model; 0.11.2 does not.


def complete_saved_processors(base: str | None, dirs: Sequence[Path]) -> list[Path]:
    """Add the base model's processor files to saved model folders that lack them; the folders completed.

    Files already there are kept.
    """
    lacking = [d for d in dirs if not _has_processor(d)]
    if not base or not lacking or not _has_processor(Path(base)):
        return []
    from transformers import AutoProcessor

    with tempfile.TemporaryDirectory() as scratch:
        AutoProcessor.from_pretrained(base).save_pretrained(scratch)
        for directory in lacking:
            for file in Path(scratch).iterdir():
                if not (directory / file.name).exists():
                    shutil.copy2(file, directory / file.name)
    return lacking


def _has_processor(directory: Path) -> bool:
    # transformers 5 writes processor_config.json; 4.x wrote preprocessor_config.json
    return any((directory / name).is_file() for name in ("processor_config.json", "preprocessor_config.json"))


# ---------------------------------------------------------------- 5. the task in the trainer's logs
# Upstream lacks: (a) task metrics at evaluation: `compute_eval_metrics` (trainer/ppo_trainer.py) reports reward
# pass@k, response length and truncation per datasource and drops every extra log of the evaluation samples, where
# rarft's executor puts each response's RA-IoU, refusal and format compliance; (b) a per-step view of the rollouts:
# the actor averages each extra log over all of a step's rollouts, which gives shares of all rollouts but no rate
# over a subset (the relevant queries), no statistic per group (groups whose rewards do not vary) and no state across
# steps (a rate high for several steps). Both are wrapped here, in the process that runs the trainer: `setup_worker`
# (every Ray worker of rarft-train) patches `openrlhf.trainer.ppo_trainer` right after that module is imported
# (`_AfterImport`; importing it earlier would load vLLM in every worker), so the trainer actor, whose class Ray
# unpickles in that worker, finds the wrapped functions: `compute_eval_metrics` gains `trainer_logs.eval_logs`, and
# `BasePPOTrainer.train_step` (the sync and the async trainer) gains `trainer_logs.step_logs` in the status that
# becomes the "Global step" line and the TensorBoard / wandb scalars, and prints `ExploitWatch`'s warnings.
# Unnecessary once OpenRLHF's eval and step logs take a hook (a function of the samples returning logs); 0.11.2 has
# none.
TRAINER_MODULE = "openrlhf.trainer.ppo_trainer"
# Where the monitors' warnings go: under OpenRLHF's logger, so they print beside its step lines.
_LOGGER = logging.getLogger("openrlhf.rarft")


class _PatchingLoader(importlib.abc.Loader):
    """The module's own loader, followed by `patch(module)`."""

    def __init__(self, loader: importlib.abc.Loader, patch: Callable[[types.ModuleType], None]):
        self.loader, self.patch = loader, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name: str) -> object:  # get_source, get_filename, ... for tracebacks and inspect
        return getattr(self.loader, name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds one module as the path finder does, with `patch` run once the module has executed."""

    def __init__(self, name: str, patch: Callable[[types.ModuleType], None]):
        self.name, self.patch = name, patch

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader, self.patch)
        return spec


def report_task_in_trainer_logs() -> None:
    """Patch the trainer module now if it is imported, else right after its import (`patch_trainer`)."""
    module = sys.modules.get(TRAINER_MODULE)
    if module is not None:
        patch_trainer(module)
    elif not trainer_patch_pending():
        sys.meta_path.insert(0, _AfterImport(TRAINER_MODULE, patch_trainer))


def trainer_patch_pending() -> bool:
    """Whether the trainer module will be patched when it is imported."""
    return any(isinstance(finder, _AfterImport) and finder.name == TRAINER_MODULE for finder in sys.meta_path)


def patch_trainer(module: types.ModuleType) -> None:
    """Wrap the trainer module's `compute_eval_metrics`, `BasePPOTrainer.train_step` and its
    `SamplesGenerator.generate_samples` (once)."""
    if getattr(module, "_rarft_patched", False):
        return
    module.compute_eval_metrics = _with_task_metrics(module.compute_eval_metrics)
    module.BasePPOTrainer.train_step = _with_step_monitors(module.BasePPOTrainer.train_step)
    module.SamplesGenerator.generate_samples = _with_prefetch(module.SamplesGenerator.generate_samples)
    module._rarft_patched = True


def rollouts_of(samples: Sequence[object]) -> list:
    """`trainer_logs.Rollout` records of OpenRLHF `Experience` samples (each sample's label, reward, truncation and
    extra logs); samples that rarft did not score (no extra logs of its own) are left out."""
    from rarft_plugin.rollout_logs import ROLLOUT_LOG_NAMES
    from rarft_plugin.schema import parse_label
    from rarft_plugin.trainer_logs import Rollout

    out = []
    for sample in samples:
        info = sample.info
        if not all(name in info for name in ROLLOUT_LOG_NAMES) or sample.rewards is None:
            continue
        for i, label in enumerate(sample.labels):
            truncated = sample.truncated is not None and bool(sample.truncated[i])
            logs = {name: float(info[name][i]) for name in ROLLOUT_LOG_NAMES}
            out.append(Rollout(parse_label(label), float(sample.rewards[i]), truncated, logs))
    return out


def _defined(logs: dict[str, float | None]) -> dict[str, float]:
    """The logs that have a value: a metric without one (F1 of a class with no query) is left out rather than
    logged as None, which `--ckpt.best_metric_key` would compare with a number."""
    return {key: value for key, value in logs.items() if value is not None}


def _with_task_metrics(compute_eval_metrics: Callable) -> Callable:
    @functools.wraps(compute_eval_metrics)
    def wrapped(eval_dataloader, samples_list, n_samples_per_prompt):
        from rarft_plugin.trainer_logs import eval_logs

        logs = compute_eval_metrics(eval_dataloader, samples_list, n_samples_per_prompt)
        logs.update(_defined(eval_logs(rollouts_of(samples_list))))
        return logs

    return wrapped


def _with_step_monitors(train_step: Callable) -> Callable:
    @functools.wraps(train_step)
    def wrapped(self, rollout_samples, global_step):
        from rarft_plugin.trainer_logs import MONITOR_INPUTS, ExploitWatch, step_logs

        rollouts = rollouts_of(rollout_samples)  # before the experience maker batches the samples
        status, step = train_step(self, rollout_samples, global_step)
        if rollouts:
            logs = step_logs(rollouts, self.args.rollout.n_samples_per_prompt)
            for name in MONITOR_INPUTS:  # shown as the monitors' rates instead
                status.pop(name, None)
            status.update(_defined(logs))
            watch = self.__dict__.setdefault("_rarft_watch", ExploitWatch())
            for line in watch.update(step, logs):
                _LOGGER.warning(line)
        return status, step

    return wrapped


# ---------------------------------------------------------------- 6. the next step's clips, prepared ahead
# Upstream lacks a way to start a step's media work before the step: `SamplesGenerator.generate_samples` draws a
# step's prompts and only then dispatches them, so every rollout first waits for its clip (22 % of a step with 16
# distinct paper-size clips on an H100, docs/gpu.md). After each call, the wrapper reads the next step's prompts
# from the loader's iterator (`launch.prefetch.Lookahead`, which keeps the loader's checkpoint state where it was)
# and sends each to the engine that will get it through the one call an engine takes
# (`generate_responses`, marked as a prefetch: `launch.prefetch.prefetch_request`), which returns at once. The
# trainer goes on to make_experience and ppo_train while the engines decode. $RARFT_PREFETCH=0 turns it off.
# Unnecessary once OpenRLHF prepares media ahead itself or takes a hook before dispatch; 0.11.2 has neither.


def _with_prefetch(generate_samples: Callable) -> Callable:
    @functools.wraps(generate_samples)
    def wrapped(self, **generate_kwargs):
        result = generate_samples(self, **generate_kwargs)
        from rarft_plugin.launch.prefetch import prefetch_enabled

        try:
            if prefetch_enabled():
                _LOGGER.debug("rarft: prefetching %d clips of the next step", prefetch_next_step(self))
        except Exception as error:  # noqa: BLE001 -- a prefetch is only a hint; the step decodes on demand
            _LOGGER.warning("rarft: prefetch of the next step's clips failed (%s); they decode on demand", error)
        return result

    return wrapped


def prefetch_next_step(generator: object) -> int:
    """Send the prompts of `generator`'s (an OpenRLHF `SamplesGenerator`) next vLLM batch to the engines as
    prefetch requests; returns how many were sent (0 at the end of an epoch, or without engines)."""
    from rarft_plugin.launch.prefetch import Lookahead, engine_of, prefetch_request

    iterator, engines = getattr(generator, "_dataloader_iter", None), generator.vllm_engines
    if iterator is None or not engines:
        return 0
    if not isinstance(iterator, Lookahead):
        iterator = generator._dataloader_iter = Lookahead(iterator, _own_state_dict(generator.prompts_dataloader))
        generator.prompts_dataloader.state_dict = functools.partial(_resume_state, generator)
    rollout = generator.args.rollout
    count = getattr(rollout, "vllm_generate_batch_size", None) or rollout.batch_size
    # the loader yields (datasources, prompts, labels, videos) batches, as `_collect_prompt_batch` reads them
    rows = [row for batch in iterator.peek(count) for row in zip(*batch[1:4], strict=True)][:count]
    per_engine = [len(range(e, len(rows), len(engines))) for e in range(len(engines))]
    processor = _shared_processor(generator)
    for i, (prompt, label, video) in enumerate(rows):
        engine = engine_of(i, len(engines))
        engines[engine].generate_responses.remote(
            **prefetch_request(prompt, label, video, processor, per_engine[engine])
        )
    return len(rows)


def _shared_processor(generator: object) -> object:
    """The generator's processor as the engines are sent it: in Ray's object store once per run (each call would
    otherwise serialise its own copy, in the trainer, before the step trains), itself where Ray is not running."""
    import ray

    if not ray.is_initialized():
        return generator.tokenizer
    if "_rarft_processor_ref" not in generator.__dict__:
        generator._rarft_processor_ref = ray.put(generator.tokenizer)
    return generator._rarft_processor_ref


def _own_state_dict(loader: object) -> Callable[[], object]:
    """The loader's own `state_dict` (the class's, past the instance attribute `prefetch_next_step` sets)."""
    return functools.partial(type(loader).state_dict, loader)


def _resume_state(generator: object) -> object:
    """The prompts loader's checkpoint state with the prompts read ahead not counted as consumed."""
    from rarft_plugin.launch.prefetch import Lookahead

    iterator, loader = getattr(generator, "_dataloader_iter", None), generator.prompts_dataloader
    return iterator.state_dict() if isinstance(iterator, Lookahead) else type(loader).state_dict(loader)

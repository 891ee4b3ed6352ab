"""What rarft-train does only because OpenRLHF 0.11.2 (the version pyproject.toml pins) lacks it.

Each piece says what upstream lacks and what would make it unnecessary. None of them is needed by a
version that provides the missing piece: on an OpenRLHF upgrade, check each and delete what it makes
redundant (tests/test_train.py pins each piece's behaviour).

1. `forwarding_worker_env`: variables and a setup hook for every Ray worker;
2. `openrlhf_arguments`: train_ppo_ray's argument handling without training;
3. `gpu_module_stand_ins`: that argument handling on a machine without vLLM / flash-attn;
4. `complete_saved_processors`: loadable vision-language checkpoints.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

__all__ = [
    "GPU_ONLY_MODULES",
    "OPENRLHF_MODULE",
    "WORKER_SETUP_HOOK",
    "complete_saved_processors",
    "forwarding_worker_env",
    "gpu_module_stand_ins",
    "openrlhf_arguments",
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

# Every Ray worker of a run (policy, reference, vLLM engines) runs this first: transformers 5.x computes
# Qwen2.5-VL video positions unlike vLLM, so training would score other positions than the rollouts
# sampled (rarft_plugin.models: each model family installs what its models need).
WORKER_SETUP_HOOK = "rarft_plugin.models.use_reference_video_positions"


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

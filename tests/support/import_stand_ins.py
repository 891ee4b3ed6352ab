"""Stand-in `vllm` and `flash_attn` modules, so that OpenRLHF's modules import on a CPU machine (tests only)."""

from __future__ import annotations


def install_import_stand_ins() -> list[str]:
    """Register stand-in `vllm` and `flash_attn` modules where the real ones are not installed.

    OpenRLHF imports both at module load (the vLLM engine module, the ring-attention utilities
    behind `openrlhf.models`), and neither installs on a CPU machine. The stand-ins carry only
    what those imports name; `flash_attn.bert_padding` gets working pure-torch versions (used only
    when samples are packed). Returns the names registered. Tests only: never in production code.
    """
    import importlib.machinery
    import importlib.util
    import sys
    import types

    registered = []

    def module(name: str, **attributes) -> None:
        stand_in = types.ModuleType(name)
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
        stand_in.__dict__.update(attributes)
        stand_in.__rarft_stand_in__ = True
        sys.modules[name] = stand_in
        registered.append(name)

    if importlib.util.find_spec("vllm") is None and "vllm" not in sys.modules:
        import uuid

        module("vllm", __version__="0.31.0", AsyncEngineArgs=dict, AsyncLLMEngine=object, SamplingParams=dict)
        module("vllm.inputs", TokensPrompt=dict)
        module("vllm.utils", random_uuid=lambda: uuid.uuid4().hex)
    if importlib.util.find_spec("flash_attn") is None and "flash_attn" not in sys.modules:
        import torch
        from einops import rearrange

        def index_first_axis(tensor, indices):
            return tensor.reshape(-1, *tensor.shape[2:])[indices] if tensor.dim() > 2 else tensor.reshape(-1)[indices]

        def unpad_input(hidden_states, attention_mask, *args):
            seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
            indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
            cu = torch.nn.functional.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
            flat = hidden_states.reshape(-1, *hidden_states.shape[2:])
            return flat[indices], indices, cu, int(seqlens.max()), seqlens

        def pad_input(hidden_states, indices, batch, seqlen):
            out = torch.zeros(
                batch * seqlen, *hidden_states.shape[1:], dtype=hidden_states.dtype, device=hidden_states.device
            )
            out[indices] = hidden_states
            return out.reshape(batch, seqlen, *hidden_states.shape[1:])

        def all_gather(tensor, group=None):
            return tensor

        module("flash_attn")
        module(
            "flash_attn.bert_padding",
            index_first_axis=index_first_axis,
            pad_input=pad_input,
            unpad_input=unpad_input,
            rearrange=rearrange,
        )
        module("flash_attn.utils")
        module("flash_attn.utils.distributed", all_gather=all_gather)
        module("flash_attn_2_cuda")  # the compiled extension rarft-train's attention check looks for
    return registered

"""Absolute paths of the plugin files OpenRLHF loads, for recipes and launch scripts.

python -m rarft_plugin.paths reward   # for --reward.remote_url
python -m rarft_plugin.paths agent    # for --train.agent_func_path
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = [
    "PLUGIN_FILES",
    "plugin_path",
    "main",
]

_HERE = Path(__file__).resolve().parent
PLUGIN_FILES = {
    "reward": _HERE / "openrlhf_reward.py",
    "agent": _HERE / "openrlhf_agent.py",
}


def plugin_path(name: str) -> Path:
    """The absolute path of plugin file `name` ("reward" or "agent")."""
    if name not in PLUGIN_FILES:
        raise KeyError(f"unknown plugin file {name!r}; expected one of {sorted(PLUGIN_FILES)}")
    return PLUGIN_FILES[name]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in PLUGIN_FILES:
        print(f"usage: python -m rarft_plugin.paths {{{'|'.join(PLUGIN_FILES)}}}", file=sys.stderr)
        return 2
    print(plugin_path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""rarft-train, by job: `wiring` (command line -> train_ppo_ray's), `checks` (before Ray starts), `run`
(train_ppo_ray in this process) and `upstream` (what OpenRLHF 0.11.2 lacks). The entry point is
`rarft_plugin.train`."""

__all__ = ["checks", "run", "upstream", "wiring"]

"""rarft: Refusal-Aware Reinforcement Fine-Tuning (RA-RFT) for video temporal grounding, as an OpenRLHF plugin."""

__version__ = "0.1.0"

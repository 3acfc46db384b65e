"""Alignment after supervised fine-tuning: DPO, a Bradley-Terry reward model, RLHF with PPO and GRPO, sharing one
set of helpers for padding masks, per-token log-probabilities and rollouts."""

"""Fine-tuning: optimiser and schedule, checkpoints, and the training loop (Algorithm 1)."""

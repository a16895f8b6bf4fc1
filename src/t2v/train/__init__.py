"""Training: the synthetic shapes world, the trainer (full and LoRA), the detector and evaluation."""

"""Distributed pruning-aware training on Ray Train: driver, worker loop, collectives, checkpoints."""

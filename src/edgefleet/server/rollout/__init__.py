"""Rollouts: the strategy an operator writes, the pure engine, and the driver that runs it."""

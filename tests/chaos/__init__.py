"""The chaos suite: many runs with counted side effects, faults injected at random moments,
and a checker that proves nothing was lost, nothing completed ran twice, and every result is
right. ``make chaos`` runs the full form (``python -m tests.chaos``); ``make test`` runs a
short form (tests/integration/test_chaos.py)."""

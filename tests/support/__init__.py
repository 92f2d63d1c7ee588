"""Helpers shared by the test suite: Hypothesis strategies, builders of small policies, rewards and runs, the
slot game, the independent lifecycle oracle, and loaders for benchmark scripts and plugin distributions.
Imported as ``support.<module>`` (``tests`` is on pytest's ``pythonpath``)."""

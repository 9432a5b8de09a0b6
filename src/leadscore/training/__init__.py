"""From a training table to a fitted scorer.

Split, leakage guard, candidates, calibration, dimensions and cutoffs, and the pipeline that wires them.
"""

"""Measuring units by their behaviour, on top of `circuitdsl.models`: stimuli, responses
(the read point, planned sweeps, the reference set), tuning curves and behaviour selection
(`top K of LAYER by ...`)."""

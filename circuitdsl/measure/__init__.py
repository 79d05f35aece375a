"""Measuring units by their behaviour, on top of `circuitdsl.models`: stimuli, tuning
curves and behaviour selection (`top K of LAYER by ...`)."""

"""Research helpers beside the pipeline: a unit's strongest inputs (`inputs`), a draft spec
that passes as written (`suggest`), and planted circuits for tests and calibration
(`planting`)."""

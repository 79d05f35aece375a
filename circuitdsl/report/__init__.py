"""Reports: the verdicts of a check (`model`), their text/JSON/JUnit forms, their HTML
table (`html`), and the universality table across models (`universality`)."""

from circuitdsl.report.model import STATUSES, ClaimResult, Report

__all__ = ["STATUSES", "ClaimResult", "Report"]

"""Reports: what analysts and reviewers read (exports, the HTML map report, model cards, plots)."""

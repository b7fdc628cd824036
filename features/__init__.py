"""Pure Spark transforms from silver tables to the cell x week panel (issue 3)."""

"""Intake: delivery checks, readers, pseudonymisation, row rules and the quality gate
(landing -> bronze -> silver | quarantine)."""

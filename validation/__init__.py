"""Validation of rfq_theory: Monte Carlo checks (``validation.montecarlo``) and
one-bit inference timing (``validation.timing``)."""

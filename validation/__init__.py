"""Validation tools for rfq_theory: Monte Carlo checks and the one-bit inference benchmark."""

"""The axes a curve, a validation grid or a map can vary (names only; light to import).

- ``samples``: the number of training samples ``n``;
- ``width``: the last width ``k_L`` (the double-descent axis);
- ``widths``: every width multiplied by a common factor;
- ``ridge``: the ridge ``lambda``.

:func:`rfq_theory.sweeps.model_at` applies one value of an axis to a model.
"""

VARY_CHOICES = ("samples", "width", "widths", "ridge")

__all__ = ["VARY_CHOICES"]

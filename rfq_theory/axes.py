"""The axes a curve, a validation grid or a map can vary (names only; light to import).

- ``samples``: the number of training samples ``n``;
- ``width``: the last width ``k_L`` (the double-descent axis);
- ``widths``: every width multiplied by a common factor;
- ``ridge``: the ridge ``lambda``.

A value is absolute in the Python API (``sweep(model, "width", [500, 1000])``
sets ``k_L = 500, 1000``).  The command line (``rfq curve --grid``,
``rfq validate``) and the API with ``ratio=True`` read the values of the
axes in :data:`RATIO_AXES` as ratios to the input dimension ``d``
(``n = g d``, ``k_L = g d``); ``widths`` is a factor and ``ridge`` a
ridge either way.

:func:`rfq_theory.sweeps.model_at` applies one value of an axis to a model.
"""

VARY_CHOICES = ("samples", "width", "widths", "ridge")

#: The axes whose values are ratios to the input dimension on the command line (and with ``ratio=True``).
RATIO_AXES = ("samples", "width")

#: How each axis reads a value, for messages and help: the API meaning, then the ratio meaning.
AXIS_MEANING = {
    "samples": ("n = value", "n = value * d"),
    "width": ("last width k_L = value", "last width k_L = value * d"),
    "widths": ("every width times value", "every width times value"),
    "ridge": ("lambda = value", "lambda = value"),
}

__all__ = ["VARY_CHOICES", "RATIO_AXES", "AXIS_MEANING"]

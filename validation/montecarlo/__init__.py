"""Monte Carlo validation of rfq_theory's predictions.

Modules: ``simulate`` (real networks, ridge readout), ``backends`` (NumPy and
PyTorch array back ends), ``finite_size`` (the realized-weights route),
``compare`` (theory vs finite size vs Monte Carlo, resumable row store),
``tolerance`` (the pass/fail rule), ``records`` (the row store), ``scaling``
(growing sizes at fixed ratios), ``plotting`` and ``demo``.
"""

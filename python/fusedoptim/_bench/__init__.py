"""The benchmark engine behind ``fusedoptim bench`` and ``benchmarks/bench_*.py``.

It lives in the package (not in ``benchmarks/``) so that the command works from an
installed wheel. One module per job: ``workloads`` (shape lists), ``implementations``
(what is timed), ``timing`` (interleaved runs and statistics), ``suite`` (cases),
``report`` (table, JSON, plot), ``environment`` (what the numbers were measured on),
``training_loop`` (the step inside forward + backward).
"""

"""Refuses to load, with the words a PyO3 extension module uses in a
sub-interpreter: for the core's test of the hint that names the module
(the end-to-end test imports a real PyO3 module)."""
raise ImportError(
    "PyO3 modules do not yet support subinterpreters, see "
    "https://github.com/PyO3/pyo3/issues/576"
)

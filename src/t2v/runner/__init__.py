"""The runner: resolve -> plan -> load -> sample -> post-process -> export, one path for every mode.

:func:`t2v.runner.modes.generate` is its entry; :mod:`t2v.runner.core` is what every mode shares,
:mod:`t2v.runner.video` the video mode, :mod:`t2v.runner.resolve` the checks made before anything loads and
:mod:`t2v.runner.runtime` the process's runtime (the imports a server makes before its threads start).
Nothing is imported here, so that importing one module of the runner does not import every mode."""

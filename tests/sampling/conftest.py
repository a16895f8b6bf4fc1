from tests.fixtures import one_thread  # noqa: F401  (autouse: one torch thread per module)

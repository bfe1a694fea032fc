"""The core: the model format, the algorithms, ranking and policy (event weights,
business rules, the filter stage). Plain data in and out, no I/O beyond model files,
and it imports nothing else of recsvc: the service, the jobs and the trainer all build
on it."""

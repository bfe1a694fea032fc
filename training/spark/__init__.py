"""The Spark engine: `recsvc train --engine spark` (docs/scale.md).

The same stages as the local engine (`training.pipeline`), with the work that grows with
the events done by Spark's executors and the same definitions shared:

- `session` starts Spark (or says in one line why it cannot);
- `read` reads CSV, Parquet or JSON Lines, one file or a partitioned directory;
- `prepare` cleans and weighs shoppers group by group with the local engine's own
  functions (`training.clean.clean`, `training.signals.build_training_data`), so both
  engines drop the same rows and build the same matrices;
- `fits` fits what learns from every event (ALS with Spark ML, trending, transitions,
  repeat rates) in Spark; what learns from the per-pair matrices the model keeps anyway
  is fitted on the driver, as the local engine does;
- `engine` runs them and writes the model with the local engine's writer.
"""

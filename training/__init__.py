"""The offline trainer: load -> clean -> weight -> fit -> tune -> write.

Each stage is its own module with plain data in and out, so that another engine (Spark,
for shops that outgrow one machine) can replace a stage and still write the same model."""

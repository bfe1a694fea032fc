"""Read the interactions into Spark: CSV, CSV.gz, TSV, Parquet or JSON Lines, one file or
a directory of them (partitioned directories included, as Spark reads them), checked as
`training.readers` checks a file read locally: lower-case column names, the required
columns, ids and event names as trimmed text with empty as missing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recsvc.core.errors import InputError
from training.clean import SOURCE
from training.readers import CATEGORICAL_COLUMNS, ID_COLUMNS, INTERACTION_COLUMNS, file_format

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW = "_row"  # the order rows were read in: ties in time keep it, as the local engine does
KEEP = (*INTERACTION_COLUMNS, "value", "channel", "event_id")


def input_format(path: Path) -> str:
    """The format of a file, or of the data files in a directory (one format per input)."""
    if not path.exists():
        raise InputError(f"interactions file {path}: not found")
    if path.is_file():
        return file_format(path)
    found = {file_format(p) for p in sorted(path.rglob("*")) if p.is_file()
             and not p.name.startswith(("_", ".")) and _known(p)}
    if len(found) != 1:
        raise InputError(f"interactions directory {path}: "
                         + ("no input files in it" if not found else
                            f"mixes formats ({', '.join(sorted(found))})"))
    return found.pop()


def _known(path: Path) -> bool:
    try:
        file_format(path)
    except InputError:
        return False
    return True


def read_events(session: SparkSession, path: Path | list[Path],
                malformed: str = "FAILFAST") -> tuple[DataFrame, list[str]]:
    """The events as text columns plus `_row` and `_source` (which input file, numbering
    the list returned: the names the report counts drops by). `path` is one file, one
    directory, or a list of files of one format (the service's events files, read with
    `malformed="DROPMALFORMED"`: a line cut short by a crash is no event)."""
    from pyspark.sql import functions as F

    paths = path if isinstance(path, list) else [path]
    fmt = input_format(paths[0])
    where = [str(p) for p in paths]
    shown = paths[0] if len(paths) == 1 else paths[0].parent
    reader = session.read
    if fmt in ("csv", "tsv"):
        frame = (reader.option("header", True).option("inferSchema", False)
                 .option("sep", "\t" if fmt == "tsv" else ",").csv(where))
    elif fmt == "parquet":
        frame = reader.parquet(*where)
    else:
        frame = reader.option("mode", malformed).json(where)
    columns = [c.strip().lower() for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise InputError(f"interactions file {shown}: duplicate column names")
    frame = frame.toDF(*columns)
    for column in INTERACTION_COLUMNS:
        if column not in columns:
            raise InputError(f"interactions file {shown}: missing required column "
                             f"'{column}' (found: {', '.join(columns) or 'none'})")
    if "query" in columns:
        raise InputError(f"interactions file {shown}: search events (a 'query' column) are "
                         "read by the local engine only; train without --engine spark")
    for column in (*ID_COLUMNS, *CATEGORICAL_COLUMNS, "event_id"):
        if column in columns:
            frame = frame.withColumn(column, _text(frame, column))
    frame = frame.withColumn("timestamp", _time_text(frame))
    if "value" in columns:
        frame = frame.withColumn("value", F.col("value").cast("string"))
    frame = frame.select(*[F.col(c) if c in columns else F.lit(None).cast("string").alias(c)
                           for c in KEEP])
    files = sorted(frame.inputFiles())
    names = ([str(paths[0])] if len(paths) == 1 and paths[0].is_file()
             else [f.removeprefix("file://") for f in files])
    numbers = F.create_map(*[x for i, f in enumerate(files) for x in (F.lit(f), F.lit(i))])
    frame = (frame.withColumn(SOURCE, numbers[F.input_file_name()].cast("long"))
             .withColumn(ROW, F.monotonically_increasing_id()))
    return frame, names


def read_all(session: SparkSession, reads: list[tuple[DataFrame, list[str]]]
             ) -> tuple[DataFrame, list[str]]:
    """Several reads as one input, files numbered on and rows ordered read by read (as
    the local engine concatenates them)."""
    from pyspark.sql import functions as F

    frames, names = [], []
    for at, (frame, files) in enumerate(reads):
        frames.append(frame.withColumn(SOURCE, F.col(SOURCE) + len(names))
                      .withColumn(ROW, F.col(ROW) + F.lit(at << READ_SHIFT)))
        names += files
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out, names


# A read's row numbers (Spark's partition number << 33, plus the row) stay below 2**48
# up to 32,768 partitions: the read's number goes above them.
READ_SHIFT = 48


def _time_text(frame: DataFrame):  # noqa: ANN202 (a pyspark Column)
    """Times as the local reader hands them on: numbers as plain digits (not 1.7E9),
    Spark timestamps as ISO-8601 in UTC, text as it is."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType, TimestampType

    kind = frame.schema["timestamp"].dataType
    col = F.col("timestamp")
    if isinstance(kind, TimestampType):
        return F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'")
    if isinstance(kind, DoubleType | FloatType):
        return col.cast("decimal(24,6)").cast("string")
    return col.cast("string")


def _text(frame: DataFrame, column: str):  # noqa: ANN202 (a pyspark Column)
    """Trimmed text, empty as missing; whole numbers (Parquet, JSON) as '1', not '1.0'."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    col = F.col(column)
    kind = frame.schema[column].dataType
    if isinstance(kind, DoubleType | FloatType):
        col = F.when(F.floor(col) == col, col.cast("long").cast("string")).otherwise(
            col.cast("string"))
    text = F.trim(col.cast("string"))
    return F.when(text == "", F.lit(None)).otherwise(text)

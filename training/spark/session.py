"""A SparkSession for the Spark engine, or a one-line reason why there is none."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from recsvc.core.errors import RecsvcError
from training.config import SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")


def find_java(env: Mapping[str, str] | None = None) -> str:
    """The `java` Spark will start: JAVA_HOME's, else the one on PATH; a RecsvcError
    saying what to install otherwise."""
    env = os.environ if env is None else env
    home = env.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if java.is_file():
            return str(java)
        raise RecsvcError(f"the spark engine needs Java 17 or newer: JAVA_HOME={home} has no "
                          "bin/java (unset it or point it at a JDK/JRE)")
    found = shutil.which("java", path=env.get("PATH", ""))
    if found is None:
        raise RecsvcError("the spark engine needs Java 17 or newer, and no `java` is on PATH "
                          "(Debian: apt-get install openjdk-17-jre-headless; or set "
                          "JAVA_HOME)")
    return found


def spark_session(config: SparkConfig) -> SparkSession:
    """The session the engine runs in (`config.master`: local[N], spark://, yarn, k8s://).
    Executors run this Python, so that they import the same recsvc."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RecsvcError("the spark engine needs pyspark: pip install 'recsvc[spark]'") \
            from None
    find_java()
    # pyspark 4.3 warns at every conversion under pandas 3, about itself.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(config.master).appName("recsvc-train")
               .config("spark.driver.memory", config.driver_memory)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.driver.maxResultSize", "0")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.extraJavaOptions",
                       f"-Dlog4j2.configurationFile=file:{LOG_CONFIG}"))
    for key, value in config.conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: its first line says why
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RecsvcError(f"spark did not start ({config.master}): {first}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def bucket_count(session: SparkSession, config: SparkConfig) -> int:
    return config.buckets or 4 * session.sparkContext.defaultParallelism

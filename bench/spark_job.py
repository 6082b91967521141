"""The same job as a strong PySpark user writes it: Spark's built-in XML reader, Spark ML, ``local[N]``.

``spark.read.format("xml")`` with ``rowTag=row`` and the schema given (inferring it would read
the file once more); attributes arrive as ``_Name`` columns, already XML-decoded. Tags come from
``regexp_extract_all``, the analytics from ``explode``/``groupBy``; the text from a
``regexp_replace`` of the markup, then ``RegexTokenizer`` → ``StopWordsRemover`` → ``HashingTF``
(2**20 features) → ``Normalizer`` (unit length, as scikit-learn's HashingVectorizer gives) →
``LogisticRegression`` (unstandardised, lightly regularised), scored on a ``randomSplit``.
Needs Java 17 (``java`` on PATH).
"""

from __future__ import annotations

import os
import sys
import tempfile

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import HashingTF, Normalizer, RegexTokenizer, StopWordsRemover
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.measure import Result, Stages, main

SCHEMA = "_Id LONG, _PostTypeId INT, _CreationDate TIMESTAMP, _Tags STRING, _Body STRING"


def run(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r"), cores: int | None = None,
        random_state: int = 0) -> Result:
    stages = Stages()
    with stages("session start"):
        spark = (SparkSession.builder.master(f"local[{cores or os.cpu_count()}]").appName("posts")
                 .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .config("spark.sql.shuffle.partitions", str(4 * (cores or os.cpu_count()))).getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
    try:
        with stages("read+parse+clean"):
            posts = spark.read.format("xml").option("rowTag", "row").schema(SCHEMA).load(path)
            questions = posts.where(F.col("_PostTypeId") == 1).select(
                F.col("_Id").alias("id"), F.col("_CreationDate").alias("creation_date"),
                F.regexp_extract_all(F.coalesce(F.col("_Tags"), F.lit("")), F.lit(r"([^<>|]+)"), 1).alias("tags"),
                F.regexp_replace(F.coalesce(F.col("_Body"), F.lit("")), r"<[^>]*>", " ").alias("text"))
            with tempfile.TemporaryDirectory() as out:
                questions.write.parquet(os.path.join(out, "questions"))
                questions = spark.read.parquet(os.path.join(out, "questions")).cache()
                n_questions = questions.count()
        with stages("analytics"):
            beside = questions.where(F.array_contains("tags", tag)).select(F.explode("tags").alias("tag"))
            counted = beside.where(F.col("tag") != tag).groupBy("tag").count().collect()
            cooccurrence = {r["tag"]: r["count"] for r in counted}
            (questions.select(F.explode("tags").alias("tag")).groupBy("tag").count()
             .orderBy(F.desc("count")).limit(20).collect())
            questions.groupBy(F.year("creation_date")).count().collect()
        with stages("classifier"):
            first, second = labels
            labelled = (questions.where(F.array_contains("tags", first) != F.array_contains("tags", second))
                        .select("text", F.array_contains("tags", second).cast("double").alias("label")))
            train, test = labelled.randomSplit([0.8, 0.2], seed=random_state)
            model = Pipeline(stages=[
                RegexTokenizer(inputCol="text", outputCol="words", pattern=r"\w\w+", gaps=False),
                StopWordsRemover(inputCol="words", outputCol="kept"),
                HashingTF(inputCol="kept", outputCol="counts", numFeatures=2**20),
                Normalizer(inputCol="counts", outputCol="features", p=2.0),
                LogisticRegression(maxIter=50, regParam=1e-4, standardization=False),
            ]).fit(train)
            accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(test))
    finally:
        spark.stop()
    return Result(stages=stages.seconds, questions=n_questions, cooccurrence=cooccurrence, accuracy=float(accuracy))


if __name__ == "__main__":
    sys.exit(main(run))

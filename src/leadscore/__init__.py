import warnings
from importlib.metadata import version; __version__ = version("leadscore")

# pandera imports pyspark.pandas whenever PySpark is installed (the spark extra), and PySpark then warns
# on every command that it does not fully support pandas 3. The spark engine moves data through Arrow,
# which works with pandas 3 (tests/test_spark.py checks its scores against the pandas engine).
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

"""The SQL runner: the facts plan (`column_facts`) and the rules (`ruleset.conditions`) as
SQL expressions through sqlglot, one generator for every dialect (duckdb, Spark, BigQuery,
Snowflake, Postgres). Text that SQL cannot match portably (units, medication names,
censored values, refusal wording) is resolved in Python on distinct values, as the polars
runner does; the SQL works on the validated columns."""

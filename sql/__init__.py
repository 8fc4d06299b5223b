"""The warehouse's SQL, one file per table transformation; shipped in the wheel and read through
`importlib.resources` (see `pipelines.warehouse.sql`)."""

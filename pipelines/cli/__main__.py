"""`python -m pipelines.cli`: the `billing` command."""

from pipelines.cli import main

main()

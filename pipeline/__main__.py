"""python -m pipeline — the same as the posts-pipeline command."""
from pipeline.cli import command

command()

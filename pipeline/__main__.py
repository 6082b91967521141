"""python -m pipeline — the same as the posts-pipeline command."""
import sys

from pipeline.cli import main

sys.exit(main())

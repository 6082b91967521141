"""Benchmarks: this project's pipeline against the blog's method and a fast plain-pandas job.

``python -m bench`` runs the three on the same generated Posts.xml in alternating rounds, in one
invocation (so that a busy shared machine slows all three alike), checks that they agree, and
measures the per-stage limits of this machine. See ``python -m bench --help``.
"""

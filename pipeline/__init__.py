"""posts-pipeline: Stack Exchange Posts.xml → tag analytics and a classifier, on Dask."""

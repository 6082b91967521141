"""Kubernetes: Dask workers started by the dask-kubernetes operator for one run.

``spec`` writes the ``DaskCluster`` (pure: dask-kubernetes' ``make_cluster_spec``, then hardened),
``diagnosis`` reads why one does not start (pure), and ``lifecycle`` owns it: creates it, waits for
its scheduler and first worker, connects, and deletes it once on the way out. Named ``k8s`` so as
not to shadow the ``kubernetes`` client library.
"""

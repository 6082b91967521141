"""Imported by the fork server that local workers are forked from, after what their tasks import
(the last of ``cluster.WORKER_MODULES``).

``gc.freeze()`` moves everything those imports made out of the collector's reach, as Python's gc
documentation advises before forking: a worker's collections no longer write to the pages it shares
with the server, and when the driver exits, the server ends without collecting them one by one first
(a caller that reads the driver's output waits for the server too: it holds the same stderr).
"""

import gc

gc.freeze()

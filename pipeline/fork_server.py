"""Imported by the fork server that local workers are forked from, after what their tasks import
(the last of ``cluster.WORKER_MODULES``).

``gc.freeze()`` moves everything those imports made out of the collector's reach, as Python's gc
documentation advises before forking: a worker's collections no longer write to the pages it shares
with the server, and when the driver exits, the server ends without collecting them one by one (it
did so for seconds, and a caller waiting for the driver's output waited for the server too).
"""

import gc

gc.freeze()

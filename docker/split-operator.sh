#!/bin/sh
# Move what only the dask-kubernetes operator runs out of a virtual environment, into a tree that
# the operator image lays over it (docker/Dockerfile): the driver, `dask scheduler` and `dask
# worker` never import kopf, kubernetes_asyncio or pykube (measured: docker/README.md), ~47 MB.
#   docker/split-operator.sh /opt/venv /opt/operator-only
# dask-kubernetes declares them for its controller; the runtime's copy of its metadata no longer
# names them (the tree keeps the original), so `pip check` judges what each image holds.
set -eu
venv=$1
out=$2
OPERATOR_ONLY="kopf kubernetes-asyncio pykube-ng python-json-logger jsonpatch jsonpointer iso8601"

# shellcheck disable=SC2086  # one word per package
"$venv/bin/python" - "$out" $OPERATOR_ONLY <<'EOF'
import importlib.metadata as md
import shutil
import sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]
files = [Path(md.distribution("dask-kubernetes")._path) / "METADATA"]
for name in names:
    dist = md.distribution(name)
    files += [Path(dist.locate_file(f)).resolve() for f in dist.files]
for src in files:
    if src.is_file():
        dst = out / src.relative_to("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
EOF

# shellcheck disable=SC2086
"$venv/bin/pip" uninstall --yes --quiet $OPERATOR_ONLY
sed -i -E '/^Requires-Dist: (kopf|kubernetes-asyncio|kubernetes_asyncio|pykube-ng)([ ;<>=!~(]|$)/d' \
    "$(echo "$venv"/lib/python3*/site-packages)"/dask_kubernetes-*.dist-info/METADATA
"$venv/bin/pip" check

#!/bin/sh
# Remove from the image's virtual environment what no role of the pipeline loads at run time
# (driver, `dask scheduler`, `dask worker`, the k8s path, the operator), measured with strace and
# `python -X importtime` on each role; docker/README.md ("What the image leaves out") lists each
# removal, its size, why it is safe and how to get it back.
#   docker/slim-venv.sh /opt/venv
# Needs `strip` (binutils). Ends with `pip check`.
set -eu
venv=$1
pip="$venv/bin/pip"
sp="$(echo "$venv"/lib/python3*/site-packages)"
[ -d "$sp" ] || { echo "slim-venv: no site-packages under $venv" >&2; exit 1; }

# 1. setuptools (~9 MB): nothing installed requires it (`pip check` below), it only builds packages.
#    numba and llvmlite stay although no role loads them: dask-ml requires them (for parts we do not
#    use), and the image keeps what its packages declare, so that `pip check` tells the truth.
"$pip" uninstall --yes --quiet setuptools

# 2. kubernetes.aio (~66 MB): the asyncio copy of the client shipped inside `kubernetes`. The
#    pipeline uses the synchronous client; dask-kubernetes and kopf use kubernetes_asyncio.
rm -rf "$sp/kubernetes/aio"

# 3. pyarrow's Arrow Flight RPC (~33 MB) and its own S3 client (~15 MB): nothing imports
#    pyarrow.flight, and only its modules link libarrow_flight; pyarrow.fs (and pandas, which
#    tries it first for an s3:// URL) goes on without pyarrow._s3fs, and the pipeline, dask and
#    pandas with storage options reach S3 through s3fs. pyarrow's C++ self-tests, headers and
#    sources are for building against it. Its three copies of each libarrow_python*.so
#    become one file and two links.
rm -f "$sp"/pyarrow/libarrow_flight.so* "$sp"/pyarrow/libarrow_python_flight.so* \
      "$sp"/pyarrow/_flight.*.so "$sp"/pyarrow/flight.py \
      "$sp"/pyarrow/libarrow_s3.so* "$sp"/pyarrow/_s3fs.*.so \
      "$sp"/pyarrow/_pyarrow_cpp_tests.*.so
rm -rf "$sp/pyarrow/include" "$sp/pyarrow/src"
for lib in "$sp"/pyarrow/libarrow_python*.so; do
    for copy in "$lib".*; do
        [ -f "$copy" ] && [ ! -L "$copy" ] && cmp -s "$lib" "$copy" && ln -sf "$(basename "$lib")" "$copy"
    done
done

# 4. scipy's subpackages that nothing we run imports (~13 MB): only sklearn.datasets and
#    sklearn.cluster, which we do not use, import any of them.
for sub in io signal odr misc cluster datasets differentiate; do rm -rf "$sp/scipy/$sub"; done

# 5. botocore's API models of the ~400 AWS services other than S3 and the ones credentials come
#    from (STS: assume-role and web identity, as on EKS; SSO; sign-in) (~20 MB).
for d in "$sp"/botocore/data/*/; do
    case "$(basename "$d")" in s3|sts|sso|sso-oidc|signin) ;; *) rm -rf "$d" ;; esac
done

# 6. Bokeh's TypeScript compiler and its type libraries (for custom extensions, built with
#    Node.js), and the unminified copies of the scripts the dashboard serves minified (~15 MB).
static="$sp/bokeh/server/static"
rm -f "$static/js/compiler.js"
find "$static" -name '*.d.ts' -delete
for js in "$static"/js/*.min.js; do rm -f "${js%.min.js}.js"; done

# 7. What only building against a package needs: C/Cython sources and headers, type stubs (~19 MB).
find "$sp" -type f \( -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \
    -o -name '*.pyi' \) -delete
# Test suites under other names than tests/, and numpy.distutils (it needs the setuptools removed
# in 1; numpy.f2py stays: `from numpy import *` imports it).
rm -rf "$sp/Cryptodome/SelfTest" "$sp/tornado/test" "$sp/joblib/test" "$sp/numpy/distutils"
find "$sp" -depth -type d -empty -delete

# 8. Symbol tables and debug information of the compiled extensions (~100 MB). The libraries that
#    auditwheel vendored (*.libs/, rewritten by patchelf) are left as they are.
find "$sp" -type f -name '*.so*' ! -path '*.libs/*' -exec strip --strip-unneeded {} +

# The bytecode of pyarrow.flight (pip took that of the packages it uninstalled).
rm -f "$sp"/pyarrow/__pycache__/flight.*

# 9. Bytecode that no role loads (~28 MB): the Kubernetes client imports its ~70 API classes and
#    ~1,200 models one by one when first used; the driver uses CoreV1Api and CustomObjectsApi
#    (their bytecode stays: core_v1_api alone would take ~1 s to compile) and compiles the few
#    dozen small models it reads (~0.1 s); pip runs at build time and for users only.
#    Python compiles a module without bytecode in memory when it is imported: slower, not broken.
find "$sp/kubernetes/client/models/__pycache__" "$sp/kubernetes/client/api/__pycache__" -name '*.pyc' \
    ! -name '__init__.*' ! -name 'core_v1_api.*' ! -name 'custom_objects_api.*' -delete
find "$sp/pip" -name '*.pyc' -delete

"$pip" check

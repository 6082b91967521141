module posts-pipeline/hack/oci-runtime-wrapper

go 1.22

module posts-pipeline/hack/kind/pause

go 1.22

// Command posts-runc is an OCI runtime wrapper for dockerd on hosts that lack
// CAP_SYS_RESOURCE in their capability bounding set.
//
// Docker's --privileged (which kind uses for every node) asks runc for every
// capability, including CAP_SYS_RESOURCE; runc then fails with
// "unable to apply caps: operation not permitted". This wrapper removes
// CAP_SYS_RESOURCE from the OCI bundle's config.json (runc create/run) and from
// the process spec (runc exec --process FILE), then execs the real runc with
// the unchanged arguments.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const dropped = "CAP_SYS_RESOURCE"

var realRuncCandidates = []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc.real"}

func main() {
	args := os.Args[1:]
	cmd, bundle, process := parse(args)
	var err error
	switch cmd {
	case "create", "run":
		if bundle == "" {
			bundle, _ = os.Getwd()
		}
		err = editFile(filepath.Join(bundle, "config.json"), func(spec map[string]any) {
			if p, ok := spec["process"].(map[string]any); ok {
				dropCap(p)
			}
		})
	case "exec":
		if process != "" {
			err = editFile(process, dropCap)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "posts-runc: %v\n", err)
		os.Exit(1)
	}
	real := os.Getenv("POSTS_RUNC_REAL")
	if real == "" {
		for _, c := range realRuncCandidates {
			if _, e := os.Stat(c); e == nil {
				real = c
				break
			}
		}
	}
	if real == "" {
		fmt.Fprintln(os.Stderr, "posts-runc: no runc found in", realRuncCandidates)
		os.Exit(1)
	}
	err = syscall.Exec(real, append([]string{real}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "posts-runc: exec %s: %v\n", real, err)
	os.Exit(1)
}

// parse finds the runc subcommand and the --bundle/-b and --process/-p values.
// Global flags before the subcommand that take a value are skipped correctly.
func parse(args []string) (cmd, bundle, process string) {
	globalWithValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			cmd = a
			i++
			break
		}
		if globalWithValue[a] {
			i++
		}
	}
	for ; i < len(args); i++ {
		a := args[i]
		val := func(names ...string) (string, bool) {
			for _, n := range names {
				if a == n && i+1 < len(args) {
					i++
					return args[i], true
				}
				if strings.HasPrefix(a, n+"=") {
					return a[len(n)+1:], true
				}
			}
			return "", false
		}
		if v, ok := val("--bundle", "-b"); ok {
			bundle = v
		} else if v, ok := val("--process", "-p"); ok {
			process = v
		}
	}
	return
}

// dropCap removes CAP_SYS_RESOURCE from every capability set of a process spec.
func dropCap(p map[string]any) {
	caps, ok := p["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := list[:0]
		for _, c := range list {
			if s, _ := c.(string); s != dropped {
				kept = append(kept, c)
			}
		}
		caps[set] = kept
	}
}

func editFile(path string, edit func(map[string]any)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// UseNumber keeps 64-bit values (rlimits, memory limits) exact.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	edit(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, st.Mode().Perm())
}

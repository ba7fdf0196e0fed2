// Package cudatest holds test support for the packages with CUDA kernels
// (trainer/cuda, trainer/gpu): a syntax check of a module's CUDA C with
// clang's CUDA front end, against stub declarations of the CUDA built-ins
// (cuda_stub.h) instead of a CUDA toolkit's headers, so it runs on any
// machine with clang, CI included, and on the GPU machine, whose CUDA 13
// headers clang 16 would refuse.
package cudatest

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed cuda_stub.h
var stub []byte

// Clang returns the clang on PATH, preferring a plain "clang".
func Clang() (string, bool) {
	for _, name := range []string{"clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// CheckSyntax syntax-checks src, a module's program text as NVRTC compiles
// it, with -Wall -Werror. It skips the test when no clang is installed,
// unless $PIPELINE_REQUIRE_CLANG is set (scripts/test.sh sets it, so CI
// fails instead of skipping).
func CheckSyntax(t testing.TB, name, src string) {
	t.Helper()
	clang, ok := Clang()
	if !ok {
		if os.Getenv("PIPELINE_REQUIRE_CLANG") != "" {
			t.Fatal("no clang on PATH and PIPELINE_REQUIRE_CLANG is set")
		}
		t.Skip("no clang on PATH: CUDA sources not syntax-checked")
	}
	f := filepath.Join(t.TempDir(), name+".cu")
	if err := os.WriteFile(f, append(append([]byte{}, stub...), src...), 0o644); err != nil {
		t.Fatal(err)
	}
	// -nocudainc/-nocudalib and the stub: no CUDA installation is read;
	// -Wno-unknown-cuda-version: clang still probes for one and warns when it
	// finds a newer CUDA than it knows (13 on the GPU machine).
	out, err := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib",
		"--cuda-gpu-arch=sm_70", "-Wno-unknown-cuda-version", "-fsyntax-only", "-Wall", "-Werror", f).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: module %s: %v\n%s", clang, name, err, out)
	}
}

package gpu

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed testdata/cuda_stub.h
var cudaStub []byte

// TestKernelsParse syntax-checks the embedded CUDA sources, concatenated as
// NVRTC compiles them, with clang's CUDA front end (no GPU or CUDA toolkit
// needed), so a typo fails here rather than at run time on the GPU machine.
func TestKernelsParse(t *testing.T) {
	var clang string
	for _, name := range []string{"clang-14", "clang-15", "clang-16", "clang-17", "clang-18", "clang"} {
		if p, err := exec.LookPath(name); err == nil {
			clang = p
			break
		}
	}
	if clang == "" {
		t.Skip("no clang on PATH: CUDA sources not syntax-checked")
	}
	stub := cudaStub
	src, err := kernelSource()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "kernels.cu")
	if err := os.WriteFile(f, append(stub, src...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(clang, "-x", "cuda", "--cuda-device-only", "-nocudainc", "-nocudalib",
		"--cuda-gpu-arch=sm_70", "-fsyntax-only", "-Wall", "-Werror", f).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", clang, err, out)
	}
}

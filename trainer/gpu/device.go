package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// Backend is where training runs.
type Backend string

const (
	CPU  Backend = "cpu"
	CUDA Backend = "cuda"
)

// Device resolves a `device:` setting ("cuda", "cpu" or "auto"; "" means
// auto) to a backend. "cuda" without a usable GPU is an error that says
// why; "auto" then falls back to the CPU and returns the reason as a
// warning for the log.
func Device(setting string) (b Backend, warning string, err error) {
	switch setting {
	case "cpu":
		return CPU, "", nil
	case "cuda", "gpu":
		if ok, why := cuda.Available(); !ok {
			return "", "", fmt.Errorf("gpu: device cuda: no usable GPU: %s", why)
		}
		return CUDA, "", nil
	case "auto", "":
		if ok, why := cuda.Available(); !ok {
			return CPU, "no usable GPU, training on the CPU: " + why, nil
		}
		return CUDA, "", nil
	}
	return "", "", fmt.Errorf("gpu: device %q: want cuda, cpu or auto", setting)
}

func cudaAvailable() (bool, string) { return cuda.Available() }

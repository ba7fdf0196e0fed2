package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// Device is where a run computes: the Gorgonia CPU graph, or the GPU step
// of trainer/gpu.
type Device string

const (
	// DeviceCPU (or "") is the Gorgonia CPU graph.
	DeviceCPU Device = "cpu"
	// DeviceCUDA is trainer/gpu's step on the first CUDA device.
	DeviceCUDA Device = "cuda"
	// DeviceAuto is DeviceCUDA when a GPU is usable, else DeviceCPU with a
	// warning in the log.
	DeviceAuto Device = "auto"
)

// Devices lists the accepted Device values (for a config's enum).
var Devices = []Device{DeviceCPU, DeviceCUDA, DeviceAuto}

// OptimizerState is where AdamW's moments and update live.
type OptimizerState string

const (
	// OptimizerHost (or "", the default) is optim.AdamW on all host cores;
	// the GPU holds no optimizer bytes.
	OptimizerHost OptimizerState = "host"
	// OptimizerDevice is gpu.DeviceAdamW (moments and update on the GPU,
	// for comparison); it needs DeviceCUDA. Checkpoints have the same
	// format either way.
	OptimizerDevice OptimizerState = "device"
)

// OptimizerStates lists the accepted OptimizerState values.
var OptimizerStates = []OptimizerState{OptimizerHost, OptimizerDevice}

// resolve returns the device a run uses: "" is the CPU; auto the GPU when
// one is usable, else the CPU (the reason logged as a warning). An unknown
// name is an error.
func (d Device) resolve(log *slog.Logger) (Device, error) {
	switch d {
	case "", DeviceCPU:
		return DeviceCPU, nil
	case DeviceCUDA:
		return DeviceCUDA, nil
	case DeviceAuto:
		if ok, why := cuda.Available(); !ok {
			log.Warn("device auto: no usable GPU, running on the CPU", slog.String("reason", why))
			return DeviceCPU, nil
		}
		return DeviceCUDA, nil
	}
	return "", fmt.Errorf("device %q: want cpu, cuda or auto", string(d))
}

// check rejects an unknown optimizer state.
func (o OptimizerState) check() (OptimizerState, error) {
	switch o {
	case "", OptimizerHost:
		return OptimizerHost, nil
	case OptimizerDevice:
		return OptimizerDevice, nil
	}
	return "", fmt.Errorf("optimizer_state %q: want host or device", string(o))
}

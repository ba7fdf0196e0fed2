package gpu

import "fmt"

// OptimizerState says where AdamW's moments live: OptimizerHost (the
// default: trainer/optim on the host, all cores; the GPU holds zero
// optimizer bytes) or OptimizerDevice (DeviceAdamW, for comparison).
type OptimizerState string

const (
	OptimizerHost   OptimizerState = "host"
	OptimizerDevice OptimizerState = "device"
)

// ParseOptimizerState validates an `optimizer_state:` setting ("" is host).
func ParseOptimizerState(s string) (OptimizerState, error) {
	switch s {
	case "", "host":
		return OptimizerHost, nil
	case "device":
		return OptimizerDevice, nil
	}
	return "", fmt.Errorf("gpu: optimizer_state %q: want host or device", s)
}

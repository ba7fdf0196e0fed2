package trainer

import (
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/gpu"
)

// setSDCheckpointing asks the SD executor for gradient checkpointing
// (gpu.SDOptions.Checkpointing: each block's forward recomputed in the
// backward pass).
func setSDCheckpointing(o *gpu.SDOptions, on bool, log *slog.Logger) {
	o.Checkpointing = on
	if log != nil {
		log.Debug("SD executor options", slog.Bool("checkpointing", on))
	}
}

// sdCheckpointingOn reports whether o checkpoints.
func sdCheckpointingOn(o gpu.SDOptions) bool { return o.Checkpointing }

// SDCheckpointingAvailable reports whether the SD executor checkpoints
// when asked (memory planners plan with it then).
func SDCheckpointingAvailable() bool { return true }

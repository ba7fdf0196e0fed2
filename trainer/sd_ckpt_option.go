package trainer

import (
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/gpu"
)

// setSDCheckpointing asks the SD executor for gradient checkpointing. The
// executor on this branch has none yet (trainer/gpu's SDOptions gains
// Checkpointing with it): the request is logged and the step runs
// without.
func setSDCheckpointing(o *gpu.SDOptions, on bool, log *slog.Logger) {
	if on {
		log.Warn("checkpointing is not in this SD executor yet; training without", slog.Bool("checkpointing", on))
	}
}

// sdCheckpointingOn reports whether o checkpoints.
func sdCheckpointingOn(o gpu.SDOptions) bool { return false }

// SDCheckpointingAvailable reports whether the SD executor checkpoints
// when asked (memory planners plan with it then).
func SDCheckpointingAvailable() bool { return false }

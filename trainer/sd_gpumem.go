package trainer

import (
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// MsgGPUMemory is the log record of a GPU stage's device memory at its end
// (bench scripts read it: peak_bytes is the allocator's peak of live
// buffers, reserved_bytes what it took from the driver).
const MsgGPUMemory = "gpu memory"

// logGPUMemory logs dev's allocator counters for the work named what.
func logGPUMemory(log *slog.Logger, dev *cuda.Device, what string) {
	if log == nil || dev == nil {
		return
	}
	m := dev.MemStats()
	log.Info(MsgGPUMemory, slog.String("work", what), slog.Int64("peak_bytes", m.Peak),
		slog.Float64("peak_gib", float64(m.Peak)/(1<<30)), slog.Int64("reserved_bytes", m.Reserved),
		slog.Int64("workspace_bytes", cuda.LibraryWorkspaceBytes()))
}

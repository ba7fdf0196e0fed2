package synth

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sync"
)

var versionCache sync.Map // executable -> first line of `ffmpeg -version`

// FFmpegVersion returns the first line of `ffmpeg -version` for FFmpeg
// (cached). Encoded bytes depend on it, so it belongs in any cache key of
// rendered videos.
func FFmpegVersion(ctx context.Context) (string, error) {
	exe := FFmpeg
	if v, ok := versionCache.Load(exe); ok {
		return v.(string), nil
	}
	out, err := exec.CommandContext(ctx, exe, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("synth: %s -version: %w", exe, err)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	v := string(bytes.TrimSpace(line))
	versionCache.Store(exe, v)
	return v, nil
}

package frames

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// FFmpegVersion returns the first line of `ffmpeg -version` (ffmpeg names
// the program, "" for "ffmpeg"). It enters every cache fingerprint: which
// frames -r keeps can change between ffmpeg versions.
func FFmpegVersion(ctx context.Context, ffmpeg string) (string, error) {
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	out, err := exec.CommandContext(ctx, ffmpeg, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("frames: %s -version: %w", ffmpeg, err)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(line)), nil
}

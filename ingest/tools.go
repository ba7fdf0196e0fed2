package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// ToolVersions returns the first lines of `ffprobe -version` and `ffmpeg
// -version` (the programs o names), joined: a cache fingerprint part.
func ToolVersions(ctx context.Context, o Options) (string, error) {
	var lines []string
	for _, tool := range []string{or(o.FFprobe, "ffprobe"), or(o.FFmpeg, "ffmpeg")} {
		out, err := exec.CommandContext(ctx, tool, "-version").Output()
		if err != nil {
			return "", fmt.Errorf("ingest: %s -version: %w", tool, err)
		}
		line, _, _ := bytes.Cut(out, []byte("\n"))
		lines = append(lines, strings.TrimSpace(string(line)))
	}
	return strings.Join(lines, "; "), nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

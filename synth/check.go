package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
)

// FFprobe is the ffprobe executable used by Check.
var FFprobe = "ffprobe"

// Check verifies that path is the video spec renders: its first video stream
// has the spec's codec and size and decodes to the expected number of frames
// (which catches truncation). It decodes the whole file.
func Check(ctx context.Context, spec Spec, path string) error {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, FFprobe, "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", path)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("synth: check %s: %w: %s", path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var pr struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			Height       int    `json:"height"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out.Bytes(), &pr); err != nil {
		return fmt.Errorf("synth: check %s: ffprobe output: %w", path, err)
	}
	if len(pr.Streams) == 0 {
		return fmt.Errorf("synth: check %s: no video stream", path)
	}
	s := pr.Streams[0]
	frames, _ := strconv.Atoi(s.NbReadFrames)
	want := len(newPlan(spec).kept)
	switch {
	case s.CodecName != spec.Codec:
		return fmt.Errorf("synth: check %s: codec %s, want %s", path, s.CodecName, spec.Codec)
	case s.Width != spec.Width || s.Height != spec.Height:
		return fmt.Errorf("synth: check %s: size %dx%d, want %dx%d", path, s.Width, s.Height, spec.Width, spec.Height)
	case frames != want:
		return fmt.Errorf("synth: check %s: %d frames decode, want %d", path, frames, want)
	}
	return nil
}

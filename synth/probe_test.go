package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Test helpers that look at rendered files with the real ffprobe/ffmpeg.

type probeStream struct {
	CodecType    string            `json:"codec_type"`
	CodecName    string            `json:"codec_name"`
	Profile      string            `json:"profile"`
	PixFmt       string            `json:"pix_fmt"`
	Width        int               `json:"width"`
	Height       int               `json:"height"`
	RFrameRate   string            `json:"r_frame_rate"`
	NbFrames     string            `json:"nb_frames"`
	Tags         map[string]string `json:"tags"`
	SideDataList []struct {
		SideDataType string `json:"side_data_type"`
		Rotation     int    `json:"rotation"`
	} `json:"side_data_list"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Format  struct {
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
}

// probe runs ffprobe on path; err is ffprobe's failure (with its message).
func probe(t *testing.T, path string) (probeResult, error) {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command("ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", path)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	var pr probeResult
	if err := cmd.Run(); err != nil {
		return pr, fmt.Errorf("ffprobe %s: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out.Bytes(), &pr); err != nil {
		t.Fatalf("ffprobe json of %s: %v", path, err)
	}
	return pr, nil
}

func mustProbe(t *testing.T, path string) probeResult {
	t.Helper()
	pr, err := probe(t, path)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func (p probeResult) duration(t *testing.T) float64 {
	t.Helper()
	d, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatalf("duration %q: %v", p.Format.Duration, err)
	}
	return d
}

func (p probeResult) video() (probeStream, bool) {
	for _, s := range p.Streams {
		if s.CodecType == "video" {
			return s, true
		}
	}
	return probeStream{}, false
}

// frameMD5s returns the MD5 of every decoded frame of path (ffmpeg -f framemd5).
func frameMD5s(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-f", "framemd5", "-").Output()
	if err != nil {
		t.Fatalf("framemd5 %s: %v", path, err)
	}
	var sums []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		sums = append(sums, strings.TrimSpace(f[len(f)-1]))
	}
	return sums
}

// frameTimes returns the presentation times of the decoded frames of path.
func frameTimes(t *testing.T, path string) []float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("frame times %s: %v", path, err)
	}
	var ts []float64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.Trim(f, ","), 64)
		if err != nil {
			t.Fatalf("pts %q: %v", f, err)
		}
		ts = append(ts, v)
	}
	return ts
}

// grayFrames decodes path to 8-bit gray frames of w*h bytes each.
func grayFrames(t *testing.T, path string, w, h int) [][]byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "gray", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	n := w * h
	if len(out)%n != 0 {
		t.Fatalf("decoded %d bytes, not a multiple of %dx%d", len(out), w, h)
	}
	var frames [][]byte
	for i := 0; i+n <= len(out); i += n {
		frames = append(frames, out[i:i+n])
	}
	return frames
}

func meanAbsDiff(a, b []byte) float64 {
	var s int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		s += d
	}
	return float64(s) / float64(len(a))
}

package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Probe is the part of ffprobe's JSON output (-show_format -show_streams)
// that ingest reads.
type Probe struct {
	Streams []ProbeStream `json:"streams"`
	Format  ProbeFormat   `json:"format"`
}

// ProbeFormat is ffprobe's "format" object.
type ProbeFormat struct {
	FormatName string `json:"format_name"`
	Duration   string `json:"duration"`
	NbStreams  int    `json:"nb_streams"`
}

// ProbeStream is one of ffprobe's "streams".
type ProbeStream struct {
	Index        int               `json:"index"`
	CodecType    string            `json:"codec_type"`
	CodecName    string            `json:"codec_name"`
	Width        int               `json:"width"`
	Height       int               `json:"height"`
	PixFmt       string            `json:"pix_fmt"`
	ColorRange   string            `json:"color_range"`
	AvgFrameRate string            `json:"avg_frame_rate"`
	RFrameRate   string            `json:"r_frame_rate"`
	Duration     string            `json:"duration"`
	Tags         map[string]string `json:"tags"`
	Disposition  map[string]int    `json:"disposition"`
	SideData     []ProbeSideData   `json:"side_data_list"`
}

// ProbeSideData is one entry of a stream's side_data_list.
type ProbeSideData struct {
	Type     string  `json:"side_data_type"`
	Rotation float64 `json:"rotation"`
}

// ProbeError is a failed ffprobe run: its message is ffprobe's stderr.
type ProbeError struct {
	Path    string
	Message string
	Err     error
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("ffprobe %s: %v: %s", e.Path, e.Err, e.Message)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// RunProbe runs ffprobe (the program named by ffprobe, "" for "ffprobe") on
// path under ctx and parses its JSON output. A cancelled ctx kills ffprobe.
func RunProbe(ctx context.Context, ffprobe, path string) (*Probe, error) {
	if ffprobe == "" {
		ffprobe = "ffprobe"
	}
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-print_format", "json",
		"-show_format", "-show_streams", "--", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ProbeError{Path: path, Message: toolMessage(stderr.String()), Err: err}
	}
	var p Probe
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		return nil, &ProbeError{Path: path, Message: "unreadable ffprobe output", Err: err}
	}
	return &p, nil
}

// VideoStream returns the first video stream that is not an attached picture
// (cover art), or nil.
func (p *Probe) VideoStream() *ProbeStream {
	for i := range p.Streams {
		s := &p.Streams[i]
		if s.CodecType == "video" && s.Disposition["attached_pic"] == 0 {
			return s
		}
	}
	return nil
}

// Duration returns the container duration in seconds, or the video stream's
// when the container has none; 0 when neither is known.
func (p *Probe) Duration() float64 {
	if d, err := strconv.ParseFloat(p.Format.Duration, 64); err == nil && d > 0 && !math.IsInf(d, 0) {
		return d
	}
	if s := p.VideoStream(); s != nil {
		if d, err := strconv.ParseFloat(s.Duration, 64); err == nil && d > 0 && !math.IsInf(d, 0) {
			return d
		}
	}
	return 0
}

// FPS returns the stream's average frame rate, else its base rate, else 0.
func (s *ProbeStream) FPS() float64 {
	if f := parseRate(s.AvgFrameRate); f > 0 {
		return f
	}
	return parseRate(s.RFrameRate)
}

// Rotation returns the display rotation in degrees in [0, 360): the display
// matrix's rotation as ffprobe prints it, else the legacy rotate tag. With
// ffmpeg 5.1 a file written with `-metadata:s:v rotate=N` reads back as N.
func (s *ProbeStream) Rotation() int {
	for _, sd := range s.SideData {
		if sd.Type == "Display Matrix" {
			return normDegrees(sd.Rotation)
		}
	}
	if t, ok := s.Tags["rotate"]; ok {
		if v, err := strconv.ParseFloat(t, 64); err == nil {
			return normDegrees(v)
		}
	}
	return 0
}

func normDegrees(v float64) int {
	d := int(math.Round(v)) % 360
	if d < 0 {
		d += 360
	}
	return d
}

// parseRate parses "30000/1001" or "25".
func parseRate(r string) float64 {
	num, den, ok := strings.Cut(r, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0
	}
	if !ok {
		return n
	}
	d, err := strconv.ParseFloat(den, 64)
	if err != nil || d == 0 {
		return 0
	}
	return n / d
}

// toolMessage trims a tool's stderr to its last 600 bytes on one line,
// lines joined by " | ", without the addresses ffmpeg prints in its
// "[mov,mp4 @ 0x55d...]" prefixes (they differ between runs).
func toolMessage(s string) string { return ToolMessage(s, 600) }

var ffAddr = regexp.MustCompile(` @ 0x[0-9a-f]+\]`)

// ToolMessage cleans an ffmpeg or ffprobe stderr for a manifest or index
// message: the last max bytes, on one line, without per-run addresses.
func ToolMessage(s string, max int) string {
	s = ffAddr.ReplaceAllString(strings.TrimSpace(s), "]")
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	s = strings.ToValidUTF8(s, "")
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, " | ")
}

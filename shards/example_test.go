package shards_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/timelapse-ml/pipeline/shards"
)

// Pack a frames folder, open the shards (checksums verified) and read one
// batch of clips.
func Example() {
	framesDir := os.Getenv("FRAMES_DIR") // a frames stage's output folder
	if framesDir == "" {
		return
	}
	out, _ := os.MkdirTemp("", "shards")
	defer os.RemoveAll(out)
	if _, err := shards.Pack(context.Background(), shards.PackOptions{FramesDir: framesDir, ValFraction: 0.1}, shards.DirOutput(out)); err != nil {
		log.Fatal(err)
	}
	ds, err := shards.Open(out)
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close()
	l, err := shards.NewLoader(ds, shards.LoaderOptions{FramesLength: 25, Resolution: 64, Batch: 4, Workers: 2, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	fmt.Println(ds.NumWindows(shards.SplitTrain, 25, 1), "windows")
	b, err := l.Next(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.B, b.T, b.C, b.H, b.W, len(b.Data))
}

package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/dist"
)

// DataParallel is `pipeline run` under a launcher with several ranks
// (trainer/dist): rank 0 runs the engine as one process would, and when a
// training stage (pretrain, train, train_sd) runs, it sends the stage's trainer
// options to the other ranks over the rendezvous's control channel and
// trains with them. The other ranks run no engine (no workdir lock, no
// state, no outputs of theirs): Follow waits for rank 0's jobs and trains
// each, until rank 0 says it is done. The shards and the workdir must be
// at the same paths on every rank (a shared file system): every rank reads
// the shards, and a resumed job reads rank 0's checkpoint.
type DataParallel struct {
	env dist.Env
	log *slog.Logger
	g   *dist.Group
}

// JoinDataParallel is rank 0's side: it meets the other ranks at once (so
// they wait on the control channel, with no timeout, while rank 0 runs the
// stages before training).
func JoinDataParallel(ctx context.Context, env dist.Env, log *slog.Logger) (*DataParallel, error) {
	dp := &DataParallel{env: env, log: log}
	if _, err := dp.join(ctx); err != nil {
		return nil, err
	}
	return dp, nil
}

type dataParallelKey struct{}

// WithDataParallel hands dp to the stages run with ctx.
func WithDataParallel(ctx context.Context, dp *DataParallel) context.Context {
	return context.WithValue(ctx, dataParallelKey{}, dp)
}

// dpJob is one message from rank 0 to the others.
type dpJob struct {
	// Kind is "pretrain", "train" or "train_sd" (train with the options), "done" or
	// "failed" (stop, with rank 0's error).
	Kind     string                   `json:"kind"`
	Error    string                   `json:"error,omitempty"`
	Pretrain *trainer.PretrainOptions `json:"pretrain,omitempty"`
	Train    *trainer.TrainOptions    `json:"train,omitempty"`
	TrainSD  *trainer.SDTrainOptions  `json:"train_sd,omitempty"`
}

func (dp *DataParallel) join(ctx context.Context) (*dist.Group, error) {
	if dp.g == nil {
		g, err := dist.Join(ctx, dp.env, dp.log)
		if err != nil {
			return nil, err
		}
		dp.g = g
	}
	return dp.g, nil
}

func (dp *DataParallel) send(ctx context.Context, j dpJob) (*dist.Group, error) {
	g, err := dp.join(ctx)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	if _, err := g.Broadcast(b); err != nil {
		return nil, err
	}
	return g, nil
}

// leadTraining, in a training stage of rank 0, sends the job to the other
// ranks and returns the group to train with (nil: one process).
func leadTraining(ctx context.Context, j dpJob) (*dist.Group, error) {
	dp, _ := ctx.Value(dataParallelKey{}).(*DataParallel)
	if dp == nil {
		return nil, nil
	}
	return dp.send(ctx, j)
}

// Finish tells the other ranks that rank 0 is done (runErr nil) or failed,
// and closes the group.
func (dp *DataParallel) Finish(ctx context.Context, runErr error) error {
	j := dpJob{Kind: "done"}
	if runErr != nil {
		j = dpJob{Kind: "failed", Error: runErr.Error()}
	}
	_, err := dp.send(context.WithoutCancel(ctx), j)
	if runErr != nil {
		err = nil // the others may have gone with the same failure
	}
	return errors.Join(err, dp.g.Close())
}

// Follow is a rank other than 0: it trains each job rank 0 sends, with
// rank 0's options, until rank 0 is done.
func Follow(ctx context.Context, env dist.Env, log *slog.Logger) error {
	g, err := dist.Join(ctx, env, log)
	if err != nil {
		return err
	}
	defer g.Close()
	log.Info("waiting for rank 0's training stages", slog.Int("rank", env.Rank), slog.Int("world_size", env.World))
	for {
		b, err := g.Broadcast(nil)
		if err != nil {
			return err
		}
		var j dpJob
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("rank %d: a message from rank 0: %w", env.Rank, err)
		}
		switch {
		case j.Kind == "done":
			return nil
		case j.Kind == "failed":
			return fmt.Errorf("rank 0 failed: %s", j.Error)
		case j.Kind == "train" && j.Train != nil:
			o := *j.Train
			o.Log, o.Dist = log, g
			if _, err := trainer.Train(ctx, o); err != nil {
				return err
			}
		case j.Kind == "train_sd" && j.TrainSD != nil:
			o := *j.TrainSD
			o.Log, o.Dist = log, g
			if _, err := trainer.TrainSD(ctx, o); err != nil {
				return err
			}
		case j.Kind == "pretrain" && j.Pretrain != nil:
			o := *j.Pretrain
			o.Log, o.Dist = log, g
			if _, err := trainer.Pretrain(ctx, o); err != nil {
				return err
			}
		default:
			return fmt.Errorf("rank %d: rank 0 sent job %q", env.Rank, j.Kind)
		}
	}
}

package dist

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"time"
)

// UniqueID is NCCL's ncclUniqueId: 128 opaque bytes, passed to
// ncclCommInitRank by value.
type UniqueID struct{ Internal [128]byte }

// helloMagic starts every rank's first message to rank 0.
var helloMagic = [8]byte{'p', 'l', 'd', 'i', 's', 't', '0', '1'}

// Control is the TCP star between rank 0 and the other ranks, set up by
// the rendezvous. Every rank calls each of its methods in the same order;
// rank 0 combines the values in rank order, so all ranks get the same
// result bit for bit.
type Control struct {
	env   Env
	ln    net.Listener
	peers []*peer // rank 0: peers[r] for r >= 1
	up    *peer   // other ranks: the connection to rank 0
}

type peer struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newPeer(c net.Conn) *peer { return &peer{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)} }

// Rendezvous connects the ranks of env: rank 0 listens on env.Port and
// waits for the others, which dial env.Addr:env.Port until timeout. Rank 0
// then sends every rank the id made by newID (called on rank 0 only; nil: a
// zero id, when NCCL is not used). It returns the control channel and the
// id.
func Rendezvous(ctx context.Context, env Env, timeout time.Duration, newID func() (UniqueID, error)) (*Control, UniqueID, error) {
	var id UniqueID
	ctl := &Control{env: env}
	if env.Rank == 0 && newID != nil {
		var err error
		if id, err = newID(); err != nil {
			return nil, id, err
		}
	}
	if env.World == 1 {
		return ctl, id, nil
	}
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if env.Rank == 0 {
		if err := ctl.accept(ctx, id); err != nil {
			ctl.Close()
			return nil, id, err
		}
		return ctl, id, nil
	}
	if err := ctl.dial(ctx, &id); err != nil {
		ctl.Close()
		return nil, id, err
	}
	return ctl, id, nil
}

func (ctl *Control) hostPort() string {
	return net.JoinHostPort(ctl.env.Addr, strconv.Itoa(ctl.env.Port))
}

// accept is rank 0's side: every other rank says hello, then gets the id.
func (ctl *Control) accept(ctx context.Context, id UniqueID) error {
	env := ctl.env
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(env.Port)))
	if err != nil {
		return fmt.Errorf("dist: rank 0: rendezvous port %d (set %s to another free port): %w", env.Port, PortEnv, err)
	}
	ctl.ln = ln
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	ctl.peers = make([]*peer, env.World)
	for got := 1; got < env.World; {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("dist: rank 0: %d of %d ranks joined on port %d before the rendezvous timed out (%s): %w",
					got, env.World, env.Port, TimeoutEnv, ctx.Err())
			}
			return fmt.Errorf("dist: rank 0: accept: %w", err)
		}
		p := newPeer(c)
		var hello struct {
			Magic       [8]byte
			Rank, World uint32
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := binary.Read(p.r, binary.LittleEndian, &hello); err != nil || hello.Magic != helloMagic {
			c.Close() // not one of ours (a port scanner, a stale client)
			continue
		}
		c.SetReadDeadline(time.Time{})
		r := int(hello.Rank)
		switch {
		case int(hello.World) != env.World:
			c.Close()
			return fmt.Errorf("dist: rank %d says world size %d, rank 0 has %d", r, hello.World, env.World)
		case r < 1 || r >= env.World:
			c.Close()
			return fmt.Errorf("dist: a process says it is rank %d of %d", r, env.World)
		case ctl.peers[r] != nil:
			c.Close()
			return fmt.Errorf("dist: two processes say they are rank %d", r)
		}
		ctl.peers[r] = p
		got++
	}
	for r := 1; r < env.World; r++ {
		p := ctl.peers[r]
		if _, err := p.w.Write(id.Internal[:]); err != nil {
			return fmt.Errorf("dist: send the NCCL id to rank %d: %w", r, err)
		}
		if err := p.w.Flush(); err != nil {
			return fmt.Errorf("dist: send the NCCL id to rank %d: %w", r, err)
		}
	}
	return nil
}

// dial is the other ranks' side: connect (retrying while rank 0 is not
// listening yet), say hello, read the id.
func (ctl *Control) dial(ctx context.Context, id *UniqueID) error {
	env := ctl.env
	var d net.Dialer
	var last error
	for {
		c, err := d.DialContext(ctx, "tcp", ctl.hostPort())
		if err == nil {
			ctl.up = newPeer(c)
			break
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("dist: rank %d: rank 0 at %s did not answer before the rendezvous timed out (%s): %w",
				env.Rank, ctl.hostPort(), TimeoutEnv, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	hello := struct {
		Magic       [8]byte
		Rank, World uint32
	}{helloMagic, uint32(env.Rank), uint32(env.World)}
	if err := binary.Write(ctl.up.w, binary.LittleEndian, hello); err != nil {
		return fmt.Errorf("dist: rank %d: hello: %w", env.Rank, err)
	}
	if err := ctl.up.w.Flush(); err != nil {
		return fmt.Errorf("dist: rank %d: hello: %w", env.Rank, err)
	}
	stop := context.AfterFunc(ctx, func() { ctl.up.c.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := io.ReadFull(ctl.up.r, id.Internal[:]); err != nil {
		return fmt.Errorf("dist: rank %d: waiting for the NCCL id from rank 0 at %s: %w", env.Rank, ctl.hostPort(), err)
	}
	return nil
}

// maxMessage bounds one control message (they carry a few scalars).
const maxMessage = 1 << 20

// AllGather gives every rank every rank's payload, in rank order.
func (ctl *Control) AllGather(payload []byte) ([][]byte, error) {
	env := ctl.env
	if env.World == 1 {
		return [][]byte{payload}, nil
	}
	if env.Rank != 0 {
		if err := writeFlush(ctl.up.w, payload); err != nil {
			return nil, fmt.Errorf("dist: rank %d: send to rank 0: %w", env.Rank, err)
		}
		n, err := readMsg(ctl.up.r)
		if err != nil {
			return nil, fmt.Errorf("dist: rank %d: rank 0 left: %w", env.Rank, err)
		}
		out := make([][]byte, 0, env.World)
		for range binary.LittleEndian.Uint32(n) {
			m, err := readMsg(ctl.up.r)
			if err != nil {
				return nil, fmt.Errorf("dist: rank %d: rank 0 left: %w", env.Rank, err)
			}
			out = append(out, m)
		}
		return out, nil
	}
	out := [][]byte{payload}
	for r := 1; r < env.World; r++ {
		m, err := readMsg(ctl.peers[r].r)
		if err != nil {
			return nil, fmt.Errorf("dist: rank 0: rank %d left: %w", r, err)
		}
		out = append(out, m)
	}
	for r := 1; r < env.World; r++ {
		w := ctl.peers[r].w
		err := writeMsg(w, binary.LittleEndian.AppendUint32(nil, uint32(len(out))))
		for _, m := range out {
			if err == nil {
				err = writeMsg(w, m)
			}
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			return nil, fmt.Errorf("dist: rank 0: send to rank %d: %w", r, err)
		}
	}
	return out, nil
}

// SumFloat64 returns the sum over ranks of vals (element-wise), added in
// rank order.
func (ctl *Control) SumFloat64(vals []float64) ([]float64, error) {
	b := make([]byte, 0, 8*len(vals))
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	all, err := ctl.AllGather(b)
	if err != nil {
		return nil, err
	}
	sum := make([]float64, len(vals))
	for r, m := range all {
		if len(m) != len(b) {
			return nil, fmt.Errorf("dist: rank %d sent %d values, want %d", r, len(m)/8, len(vals))
		}
		for i := range sum {
			sum[i] += math.Float64frombits(binary.LittleEndian.Uint64(m[8*i:]))
		}
	}
	return sum, nil
}

// Broadcast returns rank 0's payload on every rank.
func (ctl *Control) Broadcast(payload []byte) ([]byte, error) {
	if ctl.env.Rank != 0 {
		payload = nil
	}
	all, err := ctl.AllGather(payload)
	if err != nil {
		return nil, err
	}
	return all[0], nil
}

// Close closes the connections.
func (ctl *Control) Close() error {
	var errs []error
	if ctl.up != nil {
		errs = append(errs, ctl.up.c.Close())
	}
	for _, p := range ctl.peers {
		if p != nil {
			errs = append(errs, p.c.Close())
		}
	}
	if ctl.ln != nil {
		errs = append(errs, ctl.ln.Close())
	}
	return errors.Join(errs...)
}

func writeMsg(w *bufio.Writer, b []byte) error {
	if err := binary.Write(w, binary.LittleEndian, uint32(len(b))); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readMsg(r *bufio.Reader) ([]byte, error) {
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, err
	}
	if n > maxMessage {
		return nil, fmt.Errorf("message of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeFlush(w *bufio.Writer, b []byte) error {
	if err := writeMsg(w, b); err != nil {
		return err
	}
	return w.Flush()
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/runtime"
)

// event is one line of `warren events` output, runc's shape.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

var eventsCommand = cli.Command{
	Name:  "events",
	Usage: "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
	ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container.`,
	Description: `The events command prints one JSON object per line: a "stats" event every
--interval, and an "oom" event whenever the OOM killer kills a process of the
container. It exits when the container stops. With --stats it prints the
statistics once and exits.`,
	Flags: []cli.Flag{
		cli.DurationFlag{Name: "interval", Value: 5 * time.Second, Usage: "set the stats collection interval"},
		cli.BoolFlag{Name: "stats", Usage: "display the container's stats then exit"},
	},
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		interval := c.Duration("interval")
		if interval <= 0 {
			return fmt.Errorf("--interval: duration must be greater than 0: %w", errdefs.ErrInvalid)
		}
		root := rootDir(c)
		enc := json.NewEncoder(os.Stdout)
		statsEvent := func() (bool, error) {
			ctr, err := runtime.Load(root, id)
			if err != nil {
				return false, err
			}
			defer ctr.Close()
			if st := ctr.State(); st.Status == runtime.Stopped {
				return false, nil
			}
			s, err := ctr.Stats()
			if err != nil {
				return false, err
			}
			return true, enc.Encode(event{Type: "stats", ID: id, Data: s})
		}
		if c.Bool("stats") {
			alive, err := statsEvent()
			if err == nil && !alive {
				err = fmt.Errorf("container %s is not running: %w", id, errdefs.ErrState)
			}
			return err
		}
		// OOM kills are counted by the kernel; watching the counter finds
		// each one within the poll period, on v1 and v2 alike.
		ctr, err := runtime.Load(root, id)
		if err != nil {
			return err
		}
		// Report kills from now on; from a container not yet started
		// (nothing ran to be killed) report all, so none is lost to the
		// race between `events` starting and `start`.
		var ooms uint64
		if ctr.State().Status != runtime.Created {
			ooms = ctr.OOMKillCount()
		}
		ctr.Close()
		statsTick := time.NewTicker(interval)
		defer statsTick.Stop()
		oomTick := time.NewTicker(min(interval, 100*time.Millisecond))
		defer oomTick.Stop()
		for {
			select {
			case <-statsTick.C:
				alive, err := statsEvent()
				if err != nil || !alive {
					return ignoreGone(err)
				}
			case <-oomTick.C:
				st, err := runtime.ReadState(root, id)
				if err != nil || st.Status == runtime.Stopped {
					// One last look: the kill that stopped it may be an OOM.
					if err == nil {
						reportOOM(enc, id, st, &ooms)
					}
					return ignoreGone(err)
				}
				reportOOM(enc, id, st, &ooms)
			}
		}
	},
}

func reportOOM(enc *json.Encoder, id string, st *runtime.State, seen *uint64) {
	n := runtime.OOMKillCountOf(st)
	for ; *seen < n; *seen++ {
		enc.Encode(event{Type: "oom", ID: id})
	}
}

// ignoreGone ends `events` quietly when the container was deleted.
func ignoreGone(err error) error {
	if isNotExist(err) {
		return nil
	}
	return err
}

package main

import (
	"os"

	"github.com/urfave/cli"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/runtime"
)

var runCommand = cli.Command{
	Name:  "run",
	Usage: "create and run a container",
	ArgsUsage: `<container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.`,
	Description: `The run command creates an instance of a container for a bundle and starts it.
In the foreground (the default) warren forwards signals to the container's init,
waits for it, removes the container and exits with its exit status (128+N when
the init was killed by signal N).`,
	Flags: append([]cli.Flag{
		cli.BoolFlag{Name: "detach, d", Usage: "detach from the container's process"},
		cli.BoolFlag{Name: "keep", Usage: "do not delete the container after it exits"},
	}, createFlags...),
	Action: func(c *cli.Context) error {
		id, err := requireID(c, 1, 1)
		if err != nil {
			return err
		}
		detach := c.Bool("detach")
		var sigs chan os.Signal
		caught := func() {}
		if !detach {
			// The init is forked by a short-lived stage of ours and would be
			// reparented away; as a subreaper we stay the one who reaps it.
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				return err
			}
			// Catch signals before the container's process starts, so
			// none is lost.
			sigs = make(chan os.Signal, 64)
			caught = catchAll(sigs)
		}
		ctr, pid, cons, err := createContainer(c, id, detach)
		if err != nil {
			return err
		}
		defer cons.close()
		stop, err := cons.startRelay()
		if err != nil {
			ctr.Delete(true)
			return err
		}
		caught()
		if err := ctr.Start(); err != nil {
			ctr.Delete(true)
			stop()
			return err
		}
		ctr.Close()
		if detach {
			return nil
		}
		status := waitForeground(pid, sigs)
		stop()
		if !c.Bool("keep") {
			if ctr, err := runtime.Load(rootDir(c), id); err == nil {
				ctr.Delete(true)
			}
		}
		return &exitError{code: status}
	},
}

// waitForeground forwards signals to the init until it exits, reaping every
// child that is reparented to us meanwhile, and returns the exit status.
func waitForeground(pid int, sigs chan os.Signal) int {
	done := make(chan int, 1)
	go func() {
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				done <- 255
				return
			}
			if p != pid {
				continue
			}
			switch {
			case ws.Exited():
				done <- ws.ExitStatus()
			case ws.Signaled():
				done <- 128 + int(ws.Signal())
			default:
				continue
			}
			return
		}
	}()
	for {
		select {
		case status := <-done:
			// The handlers stay: undoing them costs a handshake with the
			// runtime's signal thread per signal (~3 ms for all of them)
			// just before warren exits, and a signal that arrives
			// meanwhile is better queued than fatal to a `run` that
			// still deletes its container.
			return status
		case s := <-sigs:
			sig := s.(unix.Signal)
			switch sig {
			case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH, unix.SIGPIPE:
				continue
			}
			_ = unix.Kill(pid, sig)
		}
	}
}

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/api/client"
)

// Many clients on one container at once: every request is served in
// some order, none corrupts the record, and the container ends in a
// state its runtime agrees with.
func TestConcurrentRequests(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		d.ctlOK("create", "--name", "busy", "busybox", "sleep", "600")
		c := d.client()
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := 0; i < 24; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				switch i % 4 {
				case 0:
					c.Start(ctx, "busy")
				case 1:
					zero := 0
					c.Stop(ctx, "busy", &zero)
				case 2:
					c.Pause(ctx, "busy")
					c.Unpause(ctx, "busy")
				case 3:
					c.Inspect(ctx, "busy")
				}
			}(i)
		}
		wg.Wait()
		ct, err := c.Inspect(ctx, "busy")
		if err != nil {
			t.Fatal(err)
		}
		switch ct.State.Status {
		case "running", "paused":
			if _, err := os.Stat("/proc/" + itoa(ct.State.Pid)); err != nil {
				t.Errorf("recorded %s with pid %d, which does not exist", ct.State.Status, ct.State.Pid)
			}
			if len(monitors(t, d)) != 1 {
				t.Errorf("%d monitors for one container", len(monitors(t, d)))
			}
		case "exited", "created":
			if len(monitors(t, d)) != 0 {
				t.Errorf("recorded %s, yet a monitor runs", ct.State.Status)
			}
		default:
			t.Errorf("left in state %q", ct.State.Status)
		}
		if err := c.Remove(ctx, "busy", true); err != nil {
			t.Fatal(err)
		}
		noTraces(t, d)
	})
}

// warrend SIGKILLed at random instants while clients run, stop and
// remove containers: after each restart every record agrees with the
// host (a running one has its monitor and process, any other has
// neither, and no mount or directory lacks a record).
func TestDaemonKilledAtRandom(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		for round := 0; round < 6; round++ {
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					switch i {
					case 0:
						d.ctl("run", "--rm", "busybox", "true")
					case 1:
						d.ctl("run", "-d", "busybox", "sleep", "600")
					default:
						ids := strings.Fields(d.ctl("ps", "-a", "-q").stdout)
						if len(ids) > 0 {
							id := ids[rng.Intn(len(ids))]
							if i == 2 {
								d.ctl("stop", "-t", "0", id)
							} else {
								d.ctl("rm", "-f", id)
							}
						}
					}
				}(i)
			}
			time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
			d.kill9()
			wg.Wait()
			d.start()
			consistent(t, d)
		}
		for _, id := range strings.Fields(d.ctlOK("ps", "-a", "-q")) {
			d.ctlOK("rm", "-f", id)
		}
		noTraces(t, d)
	})
}

// consistent checks every record against the host.
func consistent(t *testing.T, d *daemon) {
	t.Helper()
	var cs []api.Container
	json.Unmarshal([]byte(d.ctlOK("ps", "-a", "--format", "json")), &cs)
	known := map[string]bool{}
	running := 0
	for _, c := range cs {
		known[c.ID] = true
		dir := filepath.Join(d.root, "containers", c.ID)
		mounted := false
		for _, m := range mountsUnder(t, dir, false) {
			if m == dir+"/rootfs" {
				mounted = true
			}
		}
		switch c.State.Status {
		case "running":
			running++
			if _, err := os.Stat("/proc/" + itoa(c.State.Pid)); err != nil {
				t.Errorf("%s recorded running, its pid %d is gone", c.ID[:12], c.State.Pid)
			}
			if !mounted {
				t.Errorf("%s recorded running without its rootfs", c.ID[:12])
			}
		case "exited":
			if mounted {
				t.Errorf("%s exited with its rootfs still mounted", c.ID[:12])
			}
		case "created":
		default:
			t.Errorf("%s left in state %q after recovery", c.ID[:12], c.State.Status)
		}
	}
	if n := len(monitors(t, d)); n != running {
		t.Errorf("%d monitors for %d running containers", n, running)
	}
	ents, _ := os.ReadDir(filepath.Join(d.root, "containers"))
	for _, e := range ents {
		if !known[e.Name()] {
			t.Errorf("directory %s has no record", e.Name())
		}
	}
	for _, m := range mountsUnder(t, d.root, false) {
		id, _, _ := strings.Cut(strings.TrimPrefix(m, filepath.Join(d.root, "containers")+"/"), "/")
		if !known[id] {
			t.Errorf("mount %s has no record", m)
		}
	}
}

// run -t -i through the API: a terminal of the size asked, input typed,
// the exit status back; and the image commands through the API.
func TestTerminalRunAndImages(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		c := d.client()
		ctx := context.Background()
		resp, err := c.Create(ctx, api.ContainerConfig{Image: "busybox", Tty: true, OpenStdin: true, AutoRemove: true})
		if err != nil {
			t.Fatal(err)
		}
		resize := make(chan [2]uint16, 1)
		resize <- [2]uint16{24, 77}
		pr, pw, _ := os.Pipe()
		go func() {
			time.Sleep(300 * time.Millisecond)
			pw.Write([]byte("stty size; echo $TERM; exit 6\n"))
		}()
		var out bytes.Buffer
		w, err := c.StartAttached(ctx, resp.ID, client.Stream{Stdin: pr, Stdout: &out, Resize: resize})
		pw.Close()
		if err != nil {
			t.Fatal(err)
		}
		if w.ExitCode != 6 || !strings.Contains(out.String(), "24 77") || !strings.Contains(out.String(), "xterm") {
			t.Errorf("run -t -i: exit %d, output %q", w.ExitCode, out.String())
		}
		if _, err := c.Inspect(ctx, resp.ID); !client.IsNotFound(err) {
			t.Errorf("--rm container still there: %v", err)
		}
		// Stats of a running container.
		d.ctlOK("run", "-d", "--name", "s", "-m", "32m", "busybox", "sleep", "60")
		var st []api.Stats
		if err := json.Unmarshal([]byte(d.ctlOK("stats", "--format", "json", "s")), &st); err != nil || len(st) != 1 {
			t.Fatalf("stats: %v", err)
		}
		if st[0].MemoryUsage == 0 || st[0].MemoryLimit != 32<<20 || st[0].Pids != 1 {
			t.Errorf("stats: %+v", st[0])
		}
		// Images through the API: listed; not removable while used.
		if out := d.ctlOK("images"); !strings.Contains(out, "busybox") {
			t.Errorf("images:\n%s", out)
		}
		if r := d.ctl("rmi", "busybox"); r.code == 0 || !strings.Contains(r.stderr, "used by container s") {
			t.Errorf("rmi of a used image: %d %q", r.code, r.stderr)
		}
		d.ctlOK("rm", "-f", "s")
		d.ctlOK("rmi", "busybox")
		if r := d.ctl("run", "--rm", "busybox", "true"); r.code == 0 || !strings.Contains(r.stderr, "no such image") {
			t.Errorf("run after rmi: %d %q", r.code, r.stderr)
		}
		noTraces(t, d)
	})
}

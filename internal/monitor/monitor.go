package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/ociruntime"
)

const (
	// ctlFd is the control socket Spawn passes (its ExtraFiles[0]).
	ctlFd = 3
	// drainTimeout bounds how long output is drained after the init
	// exits: processes outside a pid namespace can keep the pipes open.
	drainTimeout = 2 * time.Second
	// clientFlushTimeout bounds how long exiting waits for clients to
	// take their last frames.
	clientFlushTimeout = 2 * time.Second
	// maxClientBuffer is how much output may wait for one client. A
	// client that falls further behind is dropped: the container's
	// output (and its log) must never wait for a slow reader.
	maxClientBuffer = 1 << 20
	// pumpBuffer is the read size for the container's output; small, as
	// each idle monitor keeps one per stream.
	pumpBuffer = 8 << 10
)

var readyFrame = appendFrame(nil, frameReady, nil)

// reply is the monitor's one answer on the control socket.
type reply struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Class string `json:"class,omitempty"`
}

// The error classes a reply can carry, so Spawn's error tests like the
// runtime's with errors.Is.
var classes = []struct {
	name string
	err  error
}{
	{"notfound", errdefs.ErrNotFound},
	{"exists", errdefs.ErrExists},
	{"invalid", errdefs.ErrInvalid},
	{"notsupported", errdefs.ErrNotSupported},
	{"state", errdefs.ErrState},
	{"locked", errdefs.ErrLocked},
	{"corrupt", errdefs.ErrCorrupt},
}

func classOf(err error) string {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return ""
}

// monitor is the state of a running monitor process.
type monitor struct {
	cfg Config
	rt  *ociruntime.Runtime
	ctl *os.File

	sigchld chan os.Signal

	// The container's side: output pipes (or the pty master) we read,
	// and the stdin pipe's write end (or the master) clients write to.
	outputs  []*os.File
	pumpDone []chan struct{}
	master   *os.File

	inMu  sync.Mutex
	stdin *os.File // nil once closed

	listener *os.File

	mu      sync.Mutex // guards log, clients, exited
	log     *logWriter
	clients map[*client]struct{}
	exited  []byte // the exit frame, once the container has exited
	// flushing counts the clients still writing their exit frame.
	flushing sync.WaitGroup
}

// Main is the monitor's entry point (cmd/warren-monitor/main.go just calls os.Exit(monitor.Main())).
//
// It runs in two images of the same binary: the first creates the
// container and answers Spawn, then re-executes itself (same pid, so the
// init stays its child) with only the files the container needs; the
// second watches the container for the rest of its life. See handoff.go.
func Main() int {
	// One P: an idle monitor waits, and each P costs memory (its cache
	// of spans, its timers). A low GC target keeps the heap near what is
	// live; the monitor allocates little once running.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(50)
	if state, ok := os.LookupEnv(handoffEnv); ok {
		return resume(state)
	}

	// fd 3 must not reach the runtime and from there the container.
	if _, err := unix.FcntlInt(ctlFd, unix.F_GETFD, 0); err != nil {
		fmt.Fprintln(os.Stderr, "warren-monitor: no control socket on fd 3: this program is started by warrend")
		return 2
	}
	closeInherited(ctlFd)
	unix.CloseOnExec(ctlFd)
	unix.SetNonblock(ctlFd, true)
	ctl := os.NewFile(ctlFd, "monitor-control")

	m := &monitor{ctl: ctl, clients: map[*client]struct{}{}}
	if err := json.NewDecoder(ctl).Decode(&m.cfg); err != nil {
		m.replyError(fmt.Errorf("monitor: read config: %w", err))
		return 1
	}
	return m.run()
}

// closeInherited closes the descriptors above 2 (but keep) that the
// spawner leaked to us: Go's os/exec passes what it is given and also
// every descriptor of the caller that lacks FD_CLOEXEC. A monitor holding
// the write end of someone's pipe would keep its reader from EOF for the
// container's whole life. Whatever lacks FD_CLOEXEC here was inherited:
// the Go runtime opens its own descriptors close-on-exec.
func closeInherited(keep int) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 || fd == keep {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

func (m *monitor) replyError(err error) {
	b, _ := json.Marshal(reply{Error: err.Error(), Class: classOf(err)})
	m.ctl.Write(append(b, '\n'))
	m.ctl.Close()
}

func (m *monitor) path(name string) string { return filepath.Join(m.cfg.Dir, name) }

func (m *monitor) validate() error {
	c := &m.cfg
	switch {
	case c.ID == "":
		return fmt.Errorf("monitor config: empty container id: %w", errdefs.ErrInvalid)
	case c.Bundle == "" || !filepath.IsAbs(c.Bundle):
		return fmt.Errorf("monitor config for %s: bundle %q is not an absolute path: %w", c.ID, c.Bundle, errdefs.ErrInvalid)
	case c.Dir == "" || !filepath.IsAbs(c.Dir):
		return fmt.Errorf("monitor config for %s: dir %q is not an absolute path: %w", c.ID, c.Dir, errdefs.ErrInvalid)
	case c.RuntimePath == "":
		return fmt.Errorf("monitor config for %s: no runtime path: %w", c.ID, errdefs.ErrInvalid)
	case c.RuntimeRoot == "":
		return fmt.Errorf("monitor config for %s: no runtime root: %w", c.ID, errdefs.ErrInvalid)
	}
	return nil
}

func (m *monitor) run() int {
	if err := m.validate(); err != nil {
		m.replyError(err)
		return 1
	}
	// Never inside a container's rootfs: a monitor there would pin its
	// mount and see whatever the container puts at relative paths.
	if err := os.Chdir("/"); err != nil {
		m.replyError(fmt.Errorf("monitor for %s: chdir /: %w", m.cfg.ID, err))
		return 1
	}
	// The runtime's create forks the init and exits; as child subreaper
	// we inherit the orphaned init and get its wait status.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		m.replyError(fmt.Errorf("monitor for %s: become child subreaper: %w", m.cfg.ID, err))
		return 1
	}
	// Caught and dropped rather than ignored: an ignored disposition
	// (SIG_IGN) survives execve into the runtime and on into the
	// container's process, a caught one is reset to the default there.
	signal.Notify(make(chan os.Signal, 1), unix.SIGINT, unix.SIGHUP, unix.SIGPIPE, unix.SIGTERM)
	m.sigchld = make(chan os.Signal, 1)
	signal.Notify(m.sigchld, unix.SIGCHLD)

	m.rt = &ociruntime.Runtime{Path: m.cfg.RuntimePath, Root: m.cfg.RuntimeRoot, Log: m.path(runtimeLog), Args: m.cfg.RuntimeArgs}

	// The spawner watcher: the only reader of the control socket after
	// the config. EOF before the ack means the engine gave up or died.
	ack := make(chan bool, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		var b [1]byte
		n, _ := m.ctl.Read(b[:])
		if n == 0 {
			cancel()
		}
		ack <- n == 1
	}()

	initPid, err := m.create(ctx)
	if err != nil {
		m.replyError(err)
		return 1
	}
	// Ready for clients before the engine learns the pid: once Spawn
	// returns, Dial works (a client waits in the listen backlog until
	// the monitor accepts).
	if err := m.prepare(); err != nil {
		m.rollback()
		m.replyError(err)
		return 1
	}
	b, _ := json.Marshal(reply{Pid: initPid})
	_, err = m.ctl.Write(append(b, '\n'))
	if err != nil || !<-ack {
		// Nobody will own this container: remove it rather than leave
		// it running unknown to the engine.
		m.rollback()
		return 1
	}
	m.ctl.Close()
	cancel()
	m.reexec(initPid)
	// The re-exec failed: go on in this image. Setup garbage (the
	// runtime's output, the config) is dead now; give its pages back
	// once, since the monitor may idle for months.
	debug.FreeOSMemory()
	return m.supervise(initPid)
}

// supervise relays and logs the container's output and serves clients
// until the init exits, then records its status.
func (m *monitor) supervise(initPid int) int {
	go m.acceptLoop()
	m.pumpDone = make([]chan struct{}, len(m.outputs))
	for i, f := range m.outputs {
		m.pumpDone[i] = make(chan struct{})
		go m.pump(f, i, m.pumpDone[i])
	}
	st := m.reap(initPid)
	m.finish(st)
	return 0
}

// create runs the runtime's create with the container's stdio and returns
// the init's pid.
func (m *monitor) create(ctx context.Context) (int, error) {
	cfg := &m.cfg
	opts := ociruntime.CreateOpts{Bundle: cfg.Bundle, PidFile: m.path(pidName)}
	os.Remove(opts.PidFile)
	var childEnds []*os.File
	closeChildEnds := func() {
		for _, f := range childEnds {
			f.Close()
		}
		childEnds = nil
	}
	defer closeChildEnds()
	var stderrR *os.File

	var console chan consoleResult
	var consoleL *os.File
	if cfg.Terminal {
		l, addr, release, err := m.listenConsole()
		if err != nil {
			return 0, err
		}
		consoleL = l
		defer func() {
			consoleL.Close()
			release()
			os.Remove(m.path(consoleName))
		}()
		opts.ConsoleSocket = addr
		console = make(chan consoleResult, 1)
		go func() { console <- receiveMaster(l) }()
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return 0, fmt.Errorf("container %s: stdout pipe: %w", cfg.ID, err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			return 0, fmt.Errorf("container %s: stderr pipe: %w", cfg.ID, err)
		}
		m.outputs = []*os.File{outR, errR}
		stderrR = errR
		childEnds = append(childEnds, outW, errW)
		opts.IO.Stdout, opts.IO.Stderr = outW, errW
		if cfg.Stdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				m.closeOutputs()
				return 0, fmt.Errorf("container %s: stdin pipe: %w", cfg.ID, err)
			}
			childEnds = append(childEnds, inR)
			opts.IO.Stdin = inR
			m.stdin = inW
		}
	}

	err := m.rt.Create(ctx, cfg.ID, opts)
	// The init has its copies; ours would keep the pipes open after it
	// exits (no EOF) and its stdin open after the clients closed it.
	closeChildEnds()
	if err != nil {
		var rerr *ociruntime.Error
		if errors.As(err, &rerr) && !rerr.Logged && stderrR != nil {
			// Without a log message the runtime's words went to its
			// stderr, which is the container's stderr pipe.
			if msg := readAvailable(stderrR); msg != "" {
				rerr.Message = msg
			}
		}
		if ctx.Err() != nil {
			// The engine gave up and create was killed half-way: the
			// runtime may have state for the container already.
			m.rt.Delete(context.Background(), cfg.ID, true)
			err = fmt.Errorf("%w (the engine gave up waiting)", err)
		}
		m.closeOutputs()
		m.closeStdin()
		return 0, err
	}
	pid, err := ociruntime.ReadPidFile(opts.PidFile)
	if err == nil && pid <= 0 {
		err = fmt.Errorf("bad pid %d", pid)
	}
	if err != nil {
		err = fmt.Errorf("container %s: read pid file %s: %w", cfg.ID, opts.PidFile, err)
	}
	if err == nil && cfg.Terminal {
		// create has returned, so the runtime has sent the master.
		select {
		case r := <-console:
			if r.err != nil {
				err = fmt.Errorf("container %s: console socket %s: %w", cfg.ID, m.path(consoleName), r.err)
			} else {
				m.master = r.master
				m.outputs = []*os.File{r.master}
				m.stdin = r.master
			}
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("container %s: the runtime did not send the pty master to %s", cfg.ID, m.path(consoleName))
		}
	}
	if err != nil {
		m.rt.Delete(context.Background(), cfg.ID, true)
		m.closeOutputs()
		m.closeStdin()
		return 0, err
	}
	return pid, nil
}

type consoleResult struct {
	master *os.File
	err    error
}

// listenConsole listens on Dir/console.sock for the runtime's
// --console-socket. A long Dir is reached through our own /proc/<pid>/fd
// (not /proc/self: the runtime resolves the path), so the O_PATH fd must
// stay open until create is done; release closes it.
func (m *monitor) listenConsole() (l *os.File, addr string, release func(), err error) {
	l, err = listenUnix(m.cfg.Dir, consoleName)
	if err != nil {
		return nil, "", nil, fmt.Errorf("container %s: console socket: %w", m.cfg.ID, err)
	}
	addr, release, err = sockPath(m.cfg.Dir, consoleName, strconv.Itoa(os.Getpid()))
	if err != nil {
		l.Close()
		return nil, "", nil, fmt.Errorf("container %s: console socket: %w", m.cfg.ID, err)
	}
	return l, addr, release, nil
}

func receiveMaster(l *os.File) consoleResult {
	conn, err := acceptUnix(l)
	if err != nil {
		return consoleResult{err: err}
	}
	defer conn.Close()
	master, err := RecvConsole(conn)
	return consoleResult{master: master, err: err}
}

// readAvailable reads what a pipe holds now (the runtime has exited; a
// leftover writer could keep it open, so not until EOF).
func readAvailable(f *os.File) string {
	f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return strings.TrimSpace(string(b))
}

func (m *monitor) closeOutputs() {
	for _, f := range m.outputs {
		f.Close()
	}
	m.outputs = nil
}

// prepare opens the log and listens for clients (accepting starts in
// supervise).
func (m *monitor) prepare() error {
	lw, err := openLogWriter(m.path(logName), m.cfg.LogMaxSize, m.cfg.LogMaxFiles)
	if err != nil {
		return fmt.Errorf("container %s: open log: %w", m.cfg.ID, err)
	}
	m.log = lw
	l, err := listenUnix(m.cfg.Dir, sockName)
	if err != nil {
		return fmt.Errorf("container %s: %w", m.cfg.ID, err)
	}
	m.listener = l
	return nil
}

// rollback removes a container no one will own.
func (m *monitor) rollback() {
	if m.listener != nil {
		os.Remove(m.path(sockName))
		m.listener.Close()
	}
	m.rt.Delete(context.Background(), m.cfg.ID, true)
}

// pump copies one output stream (stream is streamStdout or streamStderr;
// the pty master is stdout) to the log and the attached clients.
func (m *monitor) pump(f *os.File, stream int, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, pumpBuffer)
	typ := frameStdout
	if stream == streamStderr {
		typ = frameStderr
	}
	for {
		n, err := f.Read(buf)
		if n > 0 {
			m.output(stream, typ, buf[:n])
		}
		// EOF: the last writer closed; EIO: the pty's last slave
		// closed; ErrClosed: finish gave up draining.
		if err != nil {
			return
		}
	}
}

func (m *monitor) output(stream int, typ byte, p []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log.Write(stream, p)
	var frame []byte
	for c := range m.clients {
		if !c.attach {
			continue
		}
		if frame == nil {
			// One copy shared by every client: queued frames are never
			// modified.
			frame = appendFrame(make([]byte, 0, frameHeaderLen+len(p)), typ, p)
		}
		c.send(frame)
	}
}

// reap reaps every child (orphans of the container reparent to us too)
// until the init is among them, and returns its status.
func (m *monitor) reap(initPid int) ExitStatus {
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err == unix.ECHILD {
				// The init is not our child: the runtime did not leave
				// it to us. Its status is lost; watch it go.
				return m.waitForeign(initPid)
			}
			if err != nil || pid <= 0 {
				break
			}
			if pid == initPid {
				return statusOf(ws, time.Now().UTC())
			}
		}
		<-m.sigchld
	}
}

// waitForeign waits for a process that is not our child to end; its
// status is unknown (255, as docker reports a lost status).
func (m *monitor) waitForeign(pid int) ExitStatus {
	for unix.Kill(pid, 0) == nil {
		time.Sleep(100 * time.Millisecond)
	}
	return ExitStatus{Code: 255, FinishedAt: time.Now().UTC()}
}

// finish drains the output, records the status and tells every client.
func (m *monitor) finish(st ExitStatus) {
	deadline := time.NewTimer(drainTimeout)
drain:
	for _, done := range m.pumpDone {
		select {
		case <-done:
		case <-deadline.C:
			break drain
		}
	}
	// Whatever still holds the pipes now is not the container's init;
	// close them to stop the pumps.
	m.closeOutputs()
	for _, done := range m.pumpDone {
		<-done
	}
	m.closeStdin()

	m.mu.Lock()
	m.log.Flush()
	m.log.Close()
	m.mu.Unlock()
	writeExit(m.cfg.Dir, st)

	b, _ := json.Marshal(st)
	m.mu.Lock()
	m.exited = appendFrame(nil, frameExit, b)
	for c := range m.clients {
		c.send(m.exited)
		c.last(&m.flushing)
	}
	m.mu.Unlock()
	// Remove the name first: a Dial from now on fails and reads the
	// exit file; one that got in before is served the exit frame.
	os.Remove(m.path(sockName))
	m.listener.Close()
	flushed := make(chan struct{})
	go func() {
		m.flushing.Wait()
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(clientFlushTimeout):
	}
}

func (m *monitor) closeStdin() {
	m.inMu.Lock()
	defer m.inMu.Unlock()
	if m.stdin != nil && m.stdin != m.master {
		m.stdin.Close()
	}
	m.stdin = nil
}

func (m *monitor) acceptLoop() {
	for {
		conn, err := acceptUnix(m.listener)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// EMFILE and the like: the next client may fare better.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go m.serve(conn)
	}
}

// serve runs one client connection: its hello, then its input frames.
func (m *monitor) serve(conn *os.File) {
	defer conn.Close()
	var buf []byte
	// A client has a few seconds to say hello; one that never does
	// would hold a goroutine for the container's life.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := readFrame(conn, &buf)
	if err != nil || typ != frameHello || len(p) < 2 {
		return
	}
	conn.SetReadDeadline(time.Time{})
	c := newClient(conn, p[1]&helloAttach != 0)
	// Ready is queued under the lock output takes: every output frame
	// after it reaches this client, none before.
	m.mu.Lock()
	c.send(readyFrame)
	if m.exited != nil {
		c.send(m.exited)
		c.last(&m.flushing)
	} else {
		m.clients[c] = struct{}{}
	}
	m.mu.Unlock()
	go c.writeLoop()
	defer func() {
		m.mu.Lock()
		delete(m.clients, c)
		m.mu.Unlock()
		c.drop()
		<-c.flushed
	}()
	for {
		typ, p, err := readFrame(conn, &buf)
		if err != nil {
			// A finished client (its exit frame sent) closing is normal;
			// keep the connection until the writer is done with it.
			return
		}
		if !c.attach {
			continue
		}
		switch typ {
		case frameStdin:
			m.writeStdin(p)
		case frameCloseStdin:
			if !m.cfg.Terminal {
				m.closeStdin()
			}
		case frameResize:
			if rows, cols, ok := parseResize(p); ok {
				m.resize(rows, cols)
			}
		}
	}
}

// writeStdin writes to the container's stdin; a container that does not
// read stalls only the client that writes (it is that client's input).
func (m *monitor) writeStdin(p []byte) {
	m.inMu.Lock()
	f := m.stdin
	m.inMu.Unlock()
	if f != nil {
		f.Write(p)
	}
}

func (m *monitor) resize(rows, cols uint16) {
	if m.master == nil {
		return
	}
	// Through SyscallConn, not Fd(): Fd would switch the master to
	// blocking mode under the pump's poller.
	rc, err := m.master.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// client is one connection's output side: a queue of frames written by
// its own goroutine, so output is never written to a socket under the
// monitor's lock.
type client struct {
	conn    *os.File
	attach  bool
	mu      sync.Mutex
	queue   [][]byte
	queued  int
	final   bool // no frame follows the exit frame
	dropped bool
	done    bool            // the writer has ended
	lastWG  *sync.WaitGroup // done when the writer ends after the exit frame
	wake    chan struct{}
	flushed chan struct{}
}

func newClient(conn *os.File, attach bool) *client {
	return &client{conn: conn, attach: attach, wake: make(chan struct{}, 1), flushed: make(chan struct{})}
}

// send queues a frame; a client whose queue would exceed maxClientBuffer
// is dropped instead of slowing the container down.
func (c *client) send(frame []byte) {
	c.mu.Lock()
	if c.dropped || c.final {
		c.mu.Unlock()
		return
	}
	if c.queued+len(frame) > maxClientBuffer && frame[0] != frameExit {
		c.mu.Unlock()
		c.drop()
		return
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.mu.Unlock()
	c.kick()
}

// last marks that nothing follows: the writer ends after the queue and
// then marks wg done.
func (c *client) last(wg *sync.WaitGroup) {
	c.mu.Lock()
	if !c.done && !c.final {
		c.final = true
		c.lastWG = wg
		wg.Add(1)
	}
	c.mu.Unlock()
	c.kick()
}

// drop stops the writer, interrupting a write to a client that does not
// read (the deadline wakes it on the poller).
func (c *client) drop() {
	c.mu.Lock()
	c.dropped = true
	c.mu.Unlock()
	c.conn.SetDeadline(time.Now())
	c.kick()
}

func (c *client) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *client) writeLoop() {
	defer func() {
		c.mu.Lock()
		c.done = true
		wg := c.lastWG
		c.mu.Unlock()
		if wg != nil {
			wg.Done()
		}
		close(c.flushed)
	}()
	w := bufio.NewWriterSize(c.conn, 4<<10)
	for {
		c.mu.Lock()
		q, final, dropped := c.queue, c.final, c.dropped
		c.queue, c.queued = nil, 0
		c.mu.Unlock()
		if dropped {
			return
		}
		for _, f := range q {
			if _, err := w.Write(f); err != nil {
				c.drop()
				return
			}
		}
		if len(q) > 0 {
			if err := w.Flush(); err != nil {
				c.drop()
				return
			}
			continue
		}
		if final {
			return
		}
		<-c.wake
	}
}

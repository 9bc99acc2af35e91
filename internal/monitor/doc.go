// Package monitor is the per-container monitor (podman's conmon, in Go):
// one small warren-monitor process per container that creates it through an
// OCI runtime binary, owns its stdio, writes its log, collects its exit
// status and outlives the engine, so warrend can be restarted without
// touching a running container.
//
// # Lifecycle
//
// Spawn starts the monitor binary in its own session with stdio on
// /dev/null and one end of a unix socketpair as fd 3 (the control socket).
// Over it:
//
//	engine  → monitor   Config as one JSON line
//	monitor → engine    {"pid":N}\n                 the container is created (runtime create done)
//	                    {"error":"...","class":"…"}\n  creation failed; the monitor exits 1
//	engine  → monitor   "k"                         ack: the engine has recorded the container
//
// The ack closes a race: if the engine gives up (its context ends) or dies
// before it has read the pid, the monitor sees EOF instead of the ack and
// deletes the container it made instead of running it unowned.
//
// The monitor is the child subreaper (PR_SET_CHILD_SUBREAPER) of the
// runtime's create, so the container's init, orphaned when create exits,
// becomes its child and its wait status comes to the monitor. After the
// ack the monitor re-executes itself, keeping its pid and only the
// container's files, to shed what creating cost it in memory (handoff.go).
// When the init is reaped the monitor drains the output (until EOF, or 2 s
// when a process outside the container's pid namespace holds the pipes),
// writes Dir/exit atomically, sends the status to every client, removes
// Dir/monitor.sock and exits.
//
// The monitor ignores SIGINT, SIGHUP, SIGPIPE and SIGTERM: its life is its
// container's, and the engine stops a container through the runtime's kill.
//
// # Files in Config.Dir
//
//	monitor.sock   clients (Dial) connect here; mode 0600
//	pid            the container init's pid (written by the runtime)
//	runtime.log    the runtime's JSON log (--log)
//	ctr.log        the container's output, JSON lines (LogEntry), rotated to ctr.log.1, ctr.log.2, …
//	exit           ExitStatus JSON, once the container has exited
//	console.sock   only while a terminal container is created
//
// # Client protocol (monitor.sock)
//
// A stream of frames in both directions, each a 1-byte type, a 4-byte
// big-endian payload length and the payload (at most 1 MiB):
//
//	'h' hello        client → monitor, first frame: payload [version=1, flags];
//	                 flags bit 0 (helloAttach) = attach (receive output and
//	                 send input); 0 = just wait for the exit status
//	'i' stdin        client → monitor: bytes for the container's stdin (or the pty)
//	'c' close stdin  client → monitor: the client's stdin ended; the container's
//	                 stdin pipe is closed (stdin-once); ignored with a terminal
//	'r' resize       client → monitor: rows, cols as two big-endian uint16;
//	                 applied to the pty master with TIOCSWINSZ
//	'k' ready        monitor → client, the answer to hello: the client is
//	                 registered; all output after this frame reaches it
//	'o' stdout       monitor → attached client: container output (all of it with a terminal)
//	'e' stderr       monitor → attached client: container error output
//	'x' exit         monitor → every client: ExitStatus JSON, the last frame
//
// Output is sent from the moment a client attaches (no replay: the log is
// for that). The exit frame follows all output in a client's stream, so an
// attached client has seen everything when it reads it. A client whose
// unsent frames would exceed 1 MiB is dropped: the monitor never lets a
// slow reader stall the container's output or its log.
package monitor

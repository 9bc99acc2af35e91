// nsexec: stage 0 of a container's init, run before the Go runtime starts.
//
// See README.md for why this must be C. The parent (warren create) starts
// "warren init" with _WARREN_INITPIPE naming a socket; this constructor then
// runs while the process is still single-threaded:
//
//   parent                                   stage 0 (this file)
//     |-- 'B' bootstrap: flags, joins ------------->|
//     |                                            | setns(joined namespaces, user first)
//     |                                            | unshare(new namespaces)
//     |<-- 'U' (only if a new user or time ns) ----|
//     | write uid_map, gid_map, timens_offsets     |
//     |-- 'u' ------------------------------------>|
//     |                                            | become root in the new user ns
//     |                                            | fork() if pid/time ns changed
//     |<-- 'P' pid of the process that runs init --|
//     |                                            | (forked parent exits; child returns
//     |                                            |  into the Go runtime as "init")
//   any failure: <-- 'E' message --, exit 1.
//
// Every message is framed as: 1 byte type, 4 bytes little-endian length, payload.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <elf.h>
#include <link.h>

#include "nsexec.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define MAX_JOINS 16

int nsx_sync_fd = -1;

int nsx_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int nsx_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EPIPE;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int nsx_send_msg(char type, const void *data, uint32_t len)
{
	unsigned char hdr[5];
	hdr[0] = (unsigned char)type;
	hdr[1] = len & 0xff;
	hdr[2] = (len >> 8) & 0xff;
	hdr[3] = (len >> 16) & 0xff;
	hdr[4] = (len >> 24) & 0xff;
	if (nsx_write_all(nsx_sync_fd, hdr, sizeof(hdr)) < 0)
		return -1;
	return len ? nsx_write_all(nsx_sync_fd, data, len) : 0;
}

void nsx_bail(const char *fmt, ...)
{
	char msg[1024];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (saved != 0 && (size_t)n < sizeof(msg)) {
		/* Go's spelling of errno texts: "no such file or directory". */
		int m = snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(saved));
		if (m > 2 && (size_t)n + 2 < sizeof(msg) && msg[n + 2] >= 'A' && msg[n + 2] <= 'Z')
			msg[n + 2] = (char)(msg[n + 2] - 'A' + 'a');
	}
	nsx_send_msg('E', msg, (uint32_t)strlen(msg));
	_exit(1);
}

uint32_t nsx_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void nsx_recv_msg(char want, unsigned char *buf, uint32_t *len)
{
	unsigned char hdr[5];
	if (nsx_read_all(nsx_sync_fd, hdr, sizeof(hdr)) < 0)
		nsx_bail("nsexec: read sync message header");
	uint32_t n = nsx_get_u32(hdr + 1);
	if ((char)hdr[0] != want) {
		errno = 0;
		nsx_bail("nsexec: expected sync message %c, got %c", want, hdr[0]);
	}
	if (n > MAX_PAYLOAD) {
		errno = 0;
		nsx_bail("nsexec: sync message too large (%u bytes)", n);
	}
	if (n && nsx_read_all(nsx_sync_fd, buf, n) < 0)
		nsx_bail("nsexec: read sync message payload");
	*len = n;
}

static const char *nsname(uint32_t flag)
{
	switch (flag) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mount";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "network";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

int nsx_setgroups_denied(void)
{
	char buf[8] = {0};
	int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n >= 4 && strncmp(buf, "deny", 4) == 0;
}

static void tail(uint32_t syncflags) __attribute__((noreturn));
static void tail(uint32_t syncflags)
{
	if (syncflags & 8)
		nsx_send_proc_context();
	nsx_tail();
}

/*
 * Bootstrap payload (little endian):
 *   u32 clone flags    namespaces to create with unshare(2)
 *   u32 sync flags     bit 0: wait for the parent to write id maps / time offsets
 *                      bit 1: make the process non-dumpable first (exec)
 *                      bit 2: after the pid, apply a 'T' plan in C and exec
 *                             the process (tail.c) instead of starting Go
 *                      bit 3: before that, send a proc filesystem context
 *                             opened in the container's pid namespace
 *   u32 njoins
 *   njoins x { u32 ns flag, u32 path length, path bytes }   (user first)
 *   u32 ntasks
 *   ntasks x { u32 path length, path bytes }   cgroup v1 tasks files
 */
/*
 * Maps the binary's code and read-only data in one call. Faulting them in
 * page by page costs ~25 us a fault on a VM with a paravirtualised MMU
 * (like the one warren is benchmarked on), and a Go process of this size
 * touches most of it anyway (the kernel maps cached neighbours at each
 * fault): measured, ~1.2 ms less per warren command. Not for a container's
 * process that only runs the C tail: it needs a few pages of C.
 */
static void map_binary(void)
{
	const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	size_t n = getauxval(AT_PHNUM);
	if (ph == NULL)
		return;
	uintptr_t bias = 0;
	for (size_t i = 0; i < n; i++)
		if (ph[i].p_type == PT_PHDR)
			bias = (uintptr_t)ph - ph[i].p_vaddr;
	for (size_t i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD || (ph[i].p_flags & PF_W))
			continue;
		uintptr_t a = (bias + ph[i].p_vaddr) & ~(uintptr_t)4095;
		uintptr_t e = bias + ph[i].p_vaddr + ph[i].p_memsz;
		/* Linux 5.14+; an older kernel faults pages in as usual. */
		madvise((void *)a, e - a, MADV_POPULATE_READ);
	}
}

/*
 * Signal forwarding. A foreground `warren run` or `warren exec` passes every
 * signal it gets to the container's process. Catching them with Go's
 * os/signal costs a handshake with the runtime's signal thread per signal,
 * ~1 ms of a 28 ms run for the 60-odd of them; instead this constructor
 * blocks most of them before the Go runtime starts (every Go thread
 * inherits the mask) and warren reads them from a signalfd. The set leaves
 * out what the Go runtime unblocks in its threads (the signals that kill or
 * crash a Go program by default, such as SIGTERM and SIGINT, and the
 * synchronous faults: those 12 still go through os/signal), SIGURG
 * (preemption) and SIGPROF, what warren does not forward (SIGCHLD;
 * SIGWINCH, which a terminal's relay catches) and what glibc reserves
 * (32, 33).
 *
 * Blocked signals are inherited across fork and execve, so every child
 * warren starts gets the caller's mask back: a container's init from
 * _WARREN_SIGMASK (nsexec below), any other program through a re-exec of
 * this binary with _WARREN_EXEC_SIGMASK, which restores the mask and execs
 * argv[1] with argv[2...] (exec_restored).
 */
int nsx_sigs_blocked;
uint64_t nsx_sigs_set;
uint64_t nsx_sigs_orig;

static int forwards_signals(int argc, char **argv)
{
	/* The verb is the first argument that is not a global flag or the
	 * value of one (cmd/warren/main.go: --log, --log-format, --root,
	 * --rootless and --criu take one unless written --flag=value). */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			return strcmp(a, "run") == 0 || strcmp(a, "exec") == 0;
		if (strcmp(a, "--") == 0)
			return 0;
		while (*a == '-')
			a++;
		if (strchr(a, '=') != NULL)
			continue;
		if (strcmp(a, "log") == 0 || strcmp(a, "log-format") == 0 || strcmp(a, "root") == 0 ||
		    strcmp(a, "rootless") == 0 || strcmp(a, "criu") == 0)
			i++;
	}
	return 0;
}

static uint64_t mask_bits(const sigset_t *set)
{
	uint64_t bits = 0;
	for (int sig = 1; sig <= 64; sig++)
		if (sigismember(set, sig) == 1)
			bits |= (uint64_t)1 << (sig - 1);
	return bits;
}

static void block_forwarded(void)
{
	sigset_t set, orig;
	sigfillset(&set);
	/* Go unblocks, in each of its threads, the signals it kills or
	 * crashes on by default and the synchronous ones (blockableSig in
	 * runtime/signal_unix.go): those go through os/signal. */
	static const int keep[] = {SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGTERM, SIGSTKFLT,
				   SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGSYS,
				   SIGKILL, SIGSTOP, SIGURG, SIGPROF, SIGCHLD, SIGWINCH};
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		sigdelset(&set, keep[i]);
	if (sigprocmask(SIG_BLOCK, &set, &orig) < 0)
		return;
	nsx_sigs_set = mask_bits(&set);
	nsx_sigs_orig = mask_bits(&orig);
	nsx_sigs_blocked = 1;
}

/* Sets the mask to the one a hex string (mask_bits) names; a malformed
 * string leaves it alone. */
static void restore_mask(const char *hex)
{
	char *end = NULL;
	errno = 0;
	unsigned long long bits = strtoull(hex, &end, 16);
	if (errno != 0 || end == hex || *end != '\0')
		return;
	sigset_t set;
	sigemptyset(&set);
	for (int sig = 1; sig <= 64; sig++)
		if (bits & ((unsigned long long)1 << (sig - 1)))
			sigaddset(&set, sig); /* 32 and 33 are refused: never blocked */
	sigprocmask(SIG_SETMASK, &set, NULL);
}

static void exec_restored(int argc, char **argv, const char *hex) __attribute__((noreturn));
static void exec_restored(int argc, char **argv, const char *hex)
{
	restore_mask(hex);
	unsetenv("_WARREN_EXEC_SIGMASK");
	if (argc < 3) {
		fprintf(stderr, "warren: _WARREN_EXEC_SIGMASK: no program to execute\n");
		_exit(127);
	}
	execv(argv[1], argv + 2);
	fprintf(stderr, "warren: exec %s: %s\n", argv[1], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

__attribute__((constructor)) static void nsexec(int argc, char **argv, char **envp)
{
	(void)envp;
	const char *restore = getenv("_WARREN_EXEC_SIGMASK");
	if (restore != NULL)
		exec_restored(argc, argv, restore);

	/* A user namespace holder (see EnvUsernsHold): wait for stdin to
	 * close, never starting the Go runtime. */
	const char *hold = getenv("_WARREN_USERNS_HOLD");
	if (hold != NULL && *hold != '\0') {
		char c;
		while (read(0, &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}

	const char *env = getenv("_WARREN_INITPIPE");
	if (env == NULL || *env == '\0') {
		if (argv != NULL && forwards_signals(argc, argv))
			block_forwarded();
		map_binary();
		return;
	}
	nsx_sync_fd = atoi(env);
	if (nsx_sync_fd < 3) {
		map_binary();
		return;
	}
	/* The mask of the warren that started this init, which may have
	 * blocked the signals it forwards. */
	const char *mask = getenv("_WARREN_SIGMASK");
	if (mask != NULL)
		restore_mask(mask);

	static unsigned char buf[MAX_PAYLOAD + 1];
	uint32_t len = 0;
	nsx_recv_msg('B', buf, &len);
	if (len < 12) {
		errno = 0;
		nsx_bail("nsexec: short bootstrap message");
	}
	uint32_t cloneflags = nsx_get_u32(buf);
	uint32_t syncflags = nsx_get_u32(buf + 4);
	uint32_t njoins = nsx_get_u32(buf + 8);
	if (njoins > MAX_JOINS) {
		errno = 0;
		nsx_bail("nsexec: too many namespaces to join (%u)", njoins);
	}

	/* Joining a live container: until the user's program is exec'd, this
	 * process holds the runtime's fds and memory, so no process of the
	 * container may ptrace it or open its /proc files (CVE-2016-9962). */
	if ((syncflags & 2) && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		nsx_bail("prctl(PR_SET_DUMPABLE, 0)");

	/* Open every namespace first: once we have joined a mount namespace the
	 * paths may resolve differently. */
	int fds[MAX_JOINS];
	uint32_t types[MAX_JOINS];
	size_t off = 12;
	size_t joins_off = off;
	/* Skip the joins to the cgroup section: into the container's cgroup
	 * before anything else (a new cgroup namespace is rooted where its
	 * creator is). Writing "0" to a v1 tasks file moves the writing
	 * thread, the only one here, without the kernel's global cgroup
	 * threadgroup lock that moving another process takes (and whose
	 * first taker waits for an expedited RCU grace period). */
	for (uint32_t i = 0; i < njoins; i++) {
		if (off + 8 > len)
			break;
		off += 8 + nsx_get_u32(buf + off + 4);
	}
	if (off + 4 > len) {
		errno = 0;
		nsx_bail("nsexec: truncated bootstrap message");
	}
	uint32_t ntasks = nsx_get_u32(buf + off);
	off += 4;
	for (uint32_t i = 0; i < ntasks; i++) {
		char path[4096];
		if (off + 4 > len) {
			errno = 0;
			nsx_bail("nsexec: truncated bootstrap message");
		}
		uint32_t plen = nsx_get_u32(buf + off);
		off += 4;
		if (plen == 0 || plen >= sizeof(path) || off + plen > len) {
			errno = 0;
			nsx_bail("nsexec: bad cgroup path in the bootstrap message");
		}
		memcpy(path, buf + off, plen);
		path[plen] = '\0';
		off += plen;
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			nsx_bail("join cgroup %s", path);
		close(fd);
	}
	off = joins_off;
	for (uint32_t i = 0; i < njoins; i++) {
		if (off + 8 > len) {
			errno = 0;
			nsx_bail("nsexec: truncated bootstrap message");
		}
		types[i] = nsx_get_u32(buf + off);
		uint32_t plen = nsx_get_u32(buf + off + 4);
		off += 8;
		if (plen == 0 || off + plen > len) {
			errno = 0;
			nsx_bail("nsexec: truncated bootstrap message");
		}
		char path[4096];
		if (plen >= sizeof(path)) {
			errno = 0;
			nsx_bail("nsexec: namespace path too long");
		}
		memcpy(path, buf + off, plen);
		path[plen] = '\0';
		off += plen;
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			nsx_bail("open %s namespace %s", nsname(types[i]), path);
	}
	/* The user namespace is joined first (its capabilities are what lets
	 * an unprivileged caller join the rest), except for a namespace that
	 * user namespace does not own: a network namespace an engine made
	 * (owned by the initial user namespace) can only be joined with the
	 * caller's own privileges, before they are traded for the container's.
	 * So: those first, then the user namespace, then the others. */
	int userfd = -1;
	struct stat userst;
	for (uint32_t i = 0; i < njoins; i++)
		if (types[i] == CLONE_NEWUSER && fstat(fds[i], &userst) == 0)
			userfd = fds[i];
	for (int pass = 0; pass < 3; pass++) {
		for (uint32_t i = 0; i < njoins; i++) {
			if (fds[i] < 0)
				continue;
			int is_user = types[i] == CLONE_NEWUSER;
			int foreign = 0;
			if (userfd >= 0 && !is_user) {
				int owner = ioctl(fds[i], NS_GET_USERNS);
				struct stat ost;
				if (owner >= 0) {
					foreign = fstat(owner, &ost) == 0 && (ost.st_ino != userst.st_ino || ost.st_dev != userst.st_dev);
					close(owner);
				}
			}
			if ((pass == 0 && !foreign) || (pass == 1 && !is_user) || (pass == 2 && (is_user || foreign)))
				continue;
			/* setns checks the fd is a namespace of that type: a path that
			 * is not one fails here with EINVAL instead of joining
			 * something else. */
			if (setns(fds[i], (int)types[i]) < 0)
				nsx_bail("join %s namespace", nsname(types[i]));
			close(fds[i]);
			fds[i] = -1;
		}
	}

	if (cloneflags != 0 && unshare((int)cloneflags) < 0)
		nsx_bail("create namespaces (unshare flags 0x%x)", cloneflags);

	if (syncflags & 1) {
		if (nsx_send_msg('U', NULL, 0) < 0)
			nsx_bail("nsexec: send id map request");
		nsx_recv_msg('u', buf, &len);
	}

	if (cloneflags & CLONE_NEWUSER) {
		/* Become root of the new user namespace; needs uid/gid 0 mapped. */
		if (setresgid(0, 0, 0) < 0)
			nsx_bail("setresgid to 0 in the new user namespace (is gid 0 mapped?)");
		/* An unprivileged parent that mapped only its own gid had to deny
		 * setgroups(2) first; there are no groups to drop then. */
		if (setgroups(0, NULL) < 0) {
			int err = errno;
			if (!(err == EPERM && nsx_setgroups_denied())) {
				errno = err; /* the probe may have changed it */
				nsx_bail("drop supplementary groups in the new user namespace");
			}
		}
		if (setresuid(0, 0, 0) < 0)
			nsx_bail("setresuid to 0 in the new user namespace (is uid 0 mapped?)");
	}

	int32_t pid = getpid();
	int fork_needed = (cloneflags & (CLONE_NEWPID | CLONE_NEWTIME)) != 0;
	for (uint32_t i = 0; i < njoins; i++)
		if (types[i] == CLONE_NEWPID || types[i] == CLONE_NEWTIME)
			fork_needed = 1;
	if (fork_needed) {
		/* unshare/setns of pid and time namespaces apply to children only. */
		pid_t child = fork();
		if (child < 0)
			nsx_bail("fork into the new pid namespace");
		if (child > 0) {
			int32_t c = child;
			if (nsx_send_msg('P', &c, sizeof(c)) < 0)
				_exit(1);
			_exit(0);
		}
		if (syncflags & 4)
			tail(syncflags);
		map_binary();
		return; /* the child goes on into the Go runtime */
	}
	if (nsx_send_msg('P', &pid, sizeof(pid)) < 0)
		nsx_bail("nsexec: send pid");
	if (syncflags & 4)
		tail(syncflags);
	map_binary();
}

/*
 * The parent prepares the rootfs from one of its threads, which cannot
 * enter the container's pid namespace; but a proc filesystem belongs to
 * the pid namespace of whoever opens its context. So the container's
 * process opens it, when asked ('f'), and sends the fd back ('F', one
 * byte with SCM_RIGHTS, outside the framing).
 */
void nsx_send_proc_context(void)
{
	unsigned char buf[8];
	uint32_t len = 0;
	nsx_recv_msg('f', buf, &len);
	int fd = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
	if (fd < 0)
		nsx_bail("fsopen proc in the container's pid namespace");
	char byte = 'F';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	while (sendmsg(nsx_sync_fd, &msg, 0) < 0)
		if (errno != EINTR)
			nsx_bail("nsexec: send the proc context");
	close(fd);
}

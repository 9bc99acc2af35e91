// tail: the last steps of a container process, in C, for `warren exec` and
// for a `create` whose rootfs the runtime prepared (prepare_linux.go).
//
// Stage 0 (nsexec.c) has joined or made the container's namespaces and the
// parent has put the process in the container's cgroups. Instead of starting the
// Go runtime (several milliseconds and megabytes per process) to apply the
// process settings, stage 0 calls nsx_tail when the bootstrap asks for it:
// it reads one 'T' message, the plan that the Go runtime encoded from
// process.* (internal/runtime/tail_linux.go, which documents the layout),
// and applies it in the same order as the Go init's finishAndExec:
//
//   close-on-exec every fd from close_from on (CVE-2024-21626 class)
//   setsid and a new session keyring (a container's init)
//   chdir(cwd), and refuse a cwd outside the root
//   umask, HOME from the container's /etc/passwd, PATH lookup
//   rlimits
//   seccomp, when it must be loaded with CAP_SYS_ADMIN (no no_new_privs)
//   bounding set, keepcaps, groups, gid, uid, capset, ambient
//   no_new_privs
//   'R' ready to the parent; a container's init then waits on the exec fifo
//   seccomp (with no_new_privs), execve
//
// Any failure sends 'E' with a message worded as the Go init's and exits 1.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsexec.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_PLAN (16u << 20)

/* Plan flags; keep in step with tail_linux.go. */
#define TAIL_NNP 0x1           /* prctl(PR_SET_NO_NEW_PRIVS) */
#define TAIL_SECCOMP_EARLY 0x2 /* load the filter before the caps change */
#define TAIL_HOME 0x4          /* process.env has no HOME: look it up */
#define TAIL_SETSID 0x8        /* a container's init leads its own session */

struct cursor {
	const unsigned char *p;
	size_t left;
};

static void need(struct cursor *c, size_t n)
{
	if (c->left < n) {
		errno = 0;
		nsx_bail("nsexec: truncated process plan");
	}
}

static uint32_t take_u32(struct cursor *c)
{
	need(c, 4);
	uint32_t v = nsx_get_u32(c->p);
	c->p += 4;
	c->left -= 4;
	return v;
}

static uint64_t take_u64(struct cursor *c)
{
	uint64_t lo = take_u32(c);
	uint64_t hi = take_u32(c);
	return lo | (hi << 32);
}

static char *take_str(struct cursor *c)
{
	uint32_t n = take_u32(c);
	need(c, n);
	char *s = malloc((size_t)n + 1);
	if (s == NULL)
		nsx_bail("nsexec: allocate the process plan");
	memcpy(s, c->p, n);
	s[n] = '\0';
	c->p += n;
	c->left -= n;
	return s;
}

/* A NULL-terminated vector of count strings, with room for extra more. */
static char **take_strv(struct cursor *c, size_t extra)
{
	uint32_t n = take_u32(c);
	if (n > c->left / 4) {
		errno = 0;
		nsx_bail("nsexec: truncated process plan");
	}
	char **v = calloc((size_t)n + extra + 1, sizeof(char *));
	if (v == NULL)
		nsx_bail("nsexec: allocate the process plan");
	for (uint32_t i = 0; i < n; i++)
		v[i] = take_str(c);
	return v;
}

/* strerror as Go spells it (lower-case first letter), for messages that
 * carry the error in the middle. */
static const char *errtext(int e)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

static void close_exec_from(unsigned int first)
{
	if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* Before Linux 5.11: walk /proc/self/fd. */
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		nsx_bail("mark fds close-on-exec");
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd < (int)first || fd == dirfd(d))
			continue;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(d);
}

/* The home directory of uid in the container's /etc/passwd, or "/". */
static char *home_dir(uint32_t uid)
{
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return strdup("/");
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	while (buf != NULL) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			if (cap >= (16u << 20))
				break;
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (nb == NULL)
				break;
			buf = nb;
		}
	}
	close(fd);
	if (buf == NULL)
		return strdup("/");
	buf[len] = '\0';
	char want[16];
	snprintf(want, sizeof(want), "%u", uid);
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *field[7] = {0};
		int nf = 0;
		char *p = line;
		field[nf++] = p;
		while (nf < 7 && (p = strchr(p, ':')) != NULL) {
			*p++ = '\0';
			field[nf++] = p;
		}
		if (nf >= 6) {
			char *end = strchr(field[5], ':');
			if (end != NULL)
				*end = '\0';
			if (strcmp(field[2], want) == 0 && field[5][0] != '\0') {
				char *home = strdup(field[5]);
				free(buf);
				return home;
			}
		}
	}
	free(buf);
	return strdup("/");
}

/* 0 when path is an executable non-directory, else an errno. */
static int check_exec(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if ((st.st_mode & 0111) == 0)
		return EACCES;
	return 0;
}

/* The program to execve, found as the Go init's lookPath finds it. */
static char *look_path(const char *file, char **env)
{
	if (strchr(file, '/') != NULL) {
		int e = check_exec(file);
		if (e != 0) {
			errno = 0;
			nsx_bail("process.args[0]: exec \"%s\": %s", file, errtext(e));
		}
		return (char *)file;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = env; *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	size_t flen = strlen(file);
	const char *p = path;
	for (;;) {
		const char *end = strchr(p, ':');
		size_t dlen = end ? (size_t)(end - p) : strlen(p);
		char *cand = malloc(dlen + flen + 3);
		if (cand == NULL)
			nsx_bail("nsexec: allocate");
		if (dlen == 0)
			snprintf(cand, dlen + flen + 3, "./%s", file);
		else
			snprintf(cand, dlen + flen + 3, "%.*s/%s", (int)dlen, p, file);
		if (check_exec(cand) == 0)
			return cand;
		free(cand);
		if (end == NULL)
			break;
		p = end + 1;
	}
	errno = 0;
	nsx_bail("process.args[0]: exec: \"%s\": executable file not found in $PATH", file);
}

static void load_seccomp(struct sock_filter *prog, uint32_t n, uint32_t flags)
{
	struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog) < 0)
		nsx_bail("linux.seccomp: load filter");
}

void nsx_tail(void)
{
	unsigned char hdr[5];
	if (nsx_read_all(nsx_sync_fd, hdr, sizeof(hdr)) < 0)
		nsx_bail("nsexec: read the process plan");
	uint32_t len = nsx_get_u32(hdr + 1);
	if ((char)hdr[0] != 'T' || len > MAX_PLAN) {
		errno = 0;
		nsx_bail("nsexec: expected a process plan, got message %c of %u bytes", hdr[0], len);
	}
	unsigned char *plan = malloc(len ? len : 1);
	if (plan == NULL)
		nsx_bail("nsexec: allocate the process plan");
	if (len && nsx_read_all(nsx_sync_fd, plan, len) < 0)
		nsx_bail("nsexec: read the process plan");
	struct cursor c = {plan, len};

	uint32_t flags = take_u32(&c);
	uint32_t close_from = take_u32(&c);
	uint32_t fifo_fd = take_u32(&c);
	char *keyring = take_str(&c);
	uint32_t umask_v = take_u32(&c);
	uint32_t uid = take_u32(&c);
	uint32_t gid = take_u32(&c);
	uint32_t ngroups = take_u32(&c);
	if (ngroups > c.left / 4) {
		errno = 0;
		nsx_bail("nsexec: truncated process plan");
	}
	gid_t *groups = calloc(ngroups ? ngroups : 1, sizeof(gid_t));
	if (groups == NULL)
		nsx_bail("nsexec: allocate the process plan");
	for (uint32_t i = 0; i < ngroups; i++)
		groups[i] = take_u32(&c);
	uint64_t bounding = take_u64(&c), effective = take_u64(&c), permitted = take_u64(&c);
	uint64_t inheritable = take_u64(&c), ambient = take_u64(&c);
	uint32_t last_cap = take_u32(&c);
	if (last_cap > 63) {
		errno = 0;
		nsx_bail("nsexec: bad last capability %u in the process plan", last_cap);
	}
	uint32_t nrl = take_u32(&c);
	if (nrl > c.left / 20) {
		errno = 0;
		nsx_bail("nsexec: truncated process plan");
	}
	struct {
		uint32_t res;
		struct rlimit lim;
		char *name;
	} *rl = calloc(nrl ? nrl : 1, sizeof(*rl));
	if (rl == NULL)
		nsx_bail("nsexec: allocate the process plan");
	for (uint32_t i = 0; i < nrl; i++) {
		rl[i].res = take_u32(&c);
		rl[i].lim.rlim_cur = take_u64(&c);
		rl[i].lim.rlim_max = take_u64(&c);
		rl[i].name = take_str(&c);
	}
	uint32_t sc_flags = take_u32(&c);
	uint32_t sc_len = take_u32(&c);
	if (sc_len > 0xffff || sc_len > c.left / 8) {
		errno = 0;
		nsx_bail("nsexec: truncated process plan");
	}
	struct sock_filter *prog = calloc(sc_len ? sc_len : 1, sizeof(*prog));
	if (prog == NULL)
		nsx_bail("nsexec: allocate the process plan");
	for (uint32_t i = 0; i < sc_len; i++) {
		const unsigned char *b = c.p;
		prog[i].code = (uint16_t)(b[0] | (b[1] << 8));
		prog[i].jt = b[2];
		prog[i].jf = b[3];
		prog[i].k = nsx_get_u32(b + 4);
		c.p += 8;
		c.left -= 8;
	}
	char *cwd = take_str(&c);
	char **argv = take_strv(&c, 0);
	char **envp = take_strv(&c, 1);
	if (c.left != 0 || argv[0] == NULL) {
		errno = 0;
		nsx_bail("nsexec: malformed process plan");
	}

	/* Nothing of the runtime's may reach the program. */
	close_exec_from(close_from);

	if ((flags & TAIL_SETSID) && setsid() < 0)
		nsx_bail("setsid");
	/* A session keyring of its own, so the container does not share the
	 * caller's keys (a kernel without keyrings has none to share). */
	if (keyring[0] != '\0' && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, keyring) < 0 && errno != ENOSYS)
		nsx_bail("join a new session keyring \"%s\"", keyring);

	if (chdir(cwd) < 0)
		nsx_bail("process.cwd: chdir to %s", cwd);
	/* A cwd reached through a leaked host fd is outside the root
	 * (CVE-2024-21626): the kernel's getcwd then does not start with '/'. */
	char wd[4096];
	long wl = syscall(SYS_getcwd, wd, sizeof(wd));
	if (wl <= 0 || wd[0] != '/') {
		errno = 0;
		nsx_bail("process.cwd: %s is outside the container's root", cwd);
	}
	umask((mode_t)umask_v);
	if (flags & TAIL_HOME) {
		char **e = envp;
		while (*e != NULL)
			e++;
		char *home = home_dir(uid);
		if (home == NULL || asprintf(e, "HOME=%s", home) < 0)
			nsx_bail("nsexec: allocate");
	}
	char *path = look_path(argv[0], envp);

	/* rlimits after everything that allocates, before the caps drop. */
	for (uint32_t i = 0; i < nrl; i++)
		if (prlimit(0, (int)rl[i].res, &rl[i].lim, NULL) < 0)
			nsx_bail("process.rlimits[%u]: set %s to %llu/%llu", i, rl[i].name,
				 (unsigned long long)rl[i].lim.rlim_cur, (unsigned long long)rl[i].lim.rlim_max);

	if (sc_len > 0 && (flags & TAIL_SECCOMP_EARLY))
		load_seccomp(prog, sc_len, sc_flags);

	/* The bounding set shrinks while CAP_SETPCAP is still effective; the
	 * ids change with keepcaps so that permitted survives; then capset. */
	for (uint32_t cap = 0; cap <= last_cap; cap++) {
		if (bounding & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			nsx_bail("process.capabilities.bounding: drop capability %u from the bounding set", cap);
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		nsx_bail("set keepcaps");
	if (syscall(SYS_setgroups, (size_t)ngroups, groups) < 0) {
		int e = errno;
		if (!(e == EPERM && nsx_setgroups_denied()) || ngroups > 0) {
			char list[512];
			size_t o = 0;
			list[0] = '\0';
			for (uint32_t i = 0; i < ngroups && o + 12 < sizeof(list); i++)
				o += (size_t)snprintf(list + o, sizeof(list) - o, i ? " %u" : "%u", groups[i]);
			errno = 0;
			if (e == EPERM && nsx_setgroups_denied())
				nsx_bail("process.user.additionalGids [%s]: setgroups(2) is denied in this user namespace (linux.gidMappings maps only the caller's own gid; map a range from /etc/subgid to use supplementary groups)", list);
			nsx_bail("process.user.additionalGids [%s]: setgroups: %s", list, errtext(e));
		}
	}
	if (syscall(SYS_setresgid, gid, gid, gid) < 0) {
		int e = errno;
		errno = 0;
		nsx_bail("process.user.gid %u: setresgid: %s (is it mapped in the user namespace?)", gid, errtext(e));
	}
	if (syscall(SYS_setresuid, uid, uid, uid) < 0) {
		int e = errno;
		errno = 0;
		nsx_bail("process.user.uid %u: setresuid: %s (is it mapped in the user namespace?)", uid, errtext(e));
	}
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		nsx_bail("clear keepcaps");
	uint64_t mask = last_cap >= 63 ? ~0ULL : (1ULL << (last_cap + 1)) - 1;
	effective &= mask;
	permitted &= mask;
	inheritable &= mask;
	struct __user_cap_header_struct ch = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct cd[2] = {
		{.effective = (uint32_t)effective, .permitted = (uint32_t)permitted, .inheritable = (uint32_t)inheritable},
		{.effective = (uint32_t)(effective >> 32), .permitted = (uint32_t)(permitted >> 32), .inheritable = (uint32_t)(inheritable >> 32)},
	};
	if (syscall(SYS_capset, &ch, cd) < 0)
		nsx_bail("process.capabilities: set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		nsx_bail("process.capabilities: clear ambient capabilities");
	/* An ambient capability must also be permitted and inheritable; one
	 * that is not is left out, as in the Go init (and runc). */
	uint64_t amb = ambient & permitted & inheritable;
	for (uint32_t cap = 0; cap <= last_cap; cap++)
		if ((amb & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			nsx_bail("process.capabilities: raise ambient capability %u (it must also be permitted and inheritable)", cap);

	if ((flags & TAIL_NNP) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		nsx_bail("process.noNewPrivileges");

	if (nsx_send_msg('R', NULL, 0) < 0)
		nsx_bail("report ready");
	if (fifo_fd > 0) {
		/* Created: block until `warren start` writes the exec fifo. */
		char one;
		ssize_t n;
		do
			n = read((int)fifo_fd, &one, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			if (n == 0)
				errno = 0;
			nsx_bail("wait for start on exec fifo");
		}
	}
	if (sc_len > 0 && !(flags & TAIL_SECCOMP_EARLY))
		load_seccomp(prog, sc_len, sc_flags);
	execve(path, argv, envp);
	nsx_bail("exec %s", path);
}

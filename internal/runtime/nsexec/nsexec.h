/* Shared by stage 0 (nsexec.c) and the C tail (tail.c). */
#ifndef WARREN_NSEXEC_H
#define WARREN_NSEXEC_H

#include <stddef.h>
#include <stdint.h>

#define MAX_PAYLOAD 65536

extern int nsx_sync_fd;

int nsx_write_all(int fd, const void *buf, size_t len);
int nsx_read_all(int fd, void *buf, size_t len);
int nsx_send_msg(char type, const void *data, uint32_t len);
/* Sends "message: errno text" as an 'E' message and exits 1. */
void nsx_bail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
uint32_t nsx_get_u32(const unsigned char *p);
void nsx_recv_msg(char want, unsigned char *buf, uint32_t *len);

/* Whether /proc/self/setgroups says "deny" (an unprivileged user
 * namespace that mapped only its creator's gid). */
int nsx_setgroups_denied(void);

/* On 'f', opens a proc filesystem context and sends it back ('F'). */
void nsx_send_proc_context(void);

/* Reads the 'T' plan from the sync socket, applies it and execs the
 * process; never returns. */
void nsx_tail(void) __attribute__((noreturn));

#endif

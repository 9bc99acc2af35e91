#include "textflag.h"

// func rawPrlimitNofile(old *[2]uint64) int64
TEXT ·rawPrlimitNofile(SB), NOSPLIT, $0-16
	MOVQ	old+0(FP), R10	// struct rlimit64 *old
	MOVQ	$302, AX	// SYS_prlimit64
	MOVQ	$0, DI		// pid 0: the calling process
	MOVQ	$7, SI		// RLIMIT_NOFILE
	MOVQ	$0, DX		// new: NULL (read only)
	SYSCALL
	MOVQ	AX, ret+8(FP)
	RET

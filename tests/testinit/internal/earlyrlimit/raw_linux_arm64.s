#include "textflag.h"

// func rawPrlimitNofile(old *[2]uint64) int64
TEXT ·rawPrlimitNofile(SB), NOSPLIT, $0-16
	MOVD	$0, R0		// pid 0: the calling process
	MOVD	$7, R1		// RLIMIT_NOFILE
	MOVD	$0, R2		// new: NULL (read only)
	MOVD	old+0(FP), R3	// struct rlimit64 *old
	MOVD	$261, R8	// SYS_prlimit64
	SVC
	MOVD	R0, ret+8(FP)
	RET

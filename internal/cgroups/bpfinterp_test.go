//go:build linux

package cgroups

// A tiny eBPF interpreter for exactly the instructions DeviceFilter emits,
// so the filter's decisions can be tested without root. It is strict the way
// the kernel verifier is: unknown opcodes, reads of uninitialised registers,
// context reads other than the three u32 fields, backward or out-of-range
// jumps, falling off the end, unreachable instructions and return values
// other than 0/1 are errors.

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// devCtx is struct bpf_cgroup_dev_ctx.
type devCtx struct {
	accessType, major, minor uint32
}

func (c devCtx) field(off int16) (uint32, error) {
	switch off {
	case 0:
		return c.accessType, nil
	case 4:
		return c.major, nil
	case 8:
		return c.minor, nil
	}
	return 0, fmt.Errorf("context read at offset %d", off)
}

type regKind int

const (
	regUninit regKind = iota
	regScalar
	regCtx
)

type bpfReg struct {
	kind regKind
	val  uint64
}

// runDeviceFilter runs prog on ctx and returns R0.
func runDeviceFilter(prog []Insn, ctx devCtx) (uint64, error) {
	if err := checkCFG(prog); err != nil {
		return 0, err
	}
	var r [11]bpfReg
	r[1] = bpfReg{kind: regCtx}
	r[10] = bpfReg{kind: regCtx} // frame pointer: never read by our programs
	scalar := func(pc int, n uint8) (uint64, error) {
		if n > 10 || r[n].kind != regScalar {
			return 0, fmt.Errorf("insn %d: R%d is not an initialised scalar", pc, n)
		}
		return r[n].val, nil
	}
	setDst := func(pc int, n uint8, v uint64) error {
		if n >= 10 {
			return fmt.Errorf("insn %d: write to R%d", pc, n)
		}
		r[n] = bpfReg{kind: regScalar, val: v}
		return nil
	}
	for pc, steps := 0, 0; ; steps++ {
		if pc < 0 || pc >= len(prog) {
			return 0, fmt.Errorf("pc %d outside the program (%d insns)", pc, len(prog))
		}
		if steps > len(prog) {
			return 0, fmt.Errorf("more steps than instructions: loop")
		}
		in := prog[pc]
		dst, src := in.Dst(), in.Src()
		switch class := in.Code & 0x07; class {
		case unix.BPF_LDX:
			if in.Code != unix.BPF_LDX|unix.BPF_MEM|unix.BPF_W {
				return 0, fmt.Errorf("insn %d: unsupported load %#x", pc, in.Code)
			}
			if src > 10 || r[src].kind != regCtx {
				return 0, fmt.Errorf("insn %d: load through R%d, which is not the context", pc, src)
			}
			v, err := ctx.field(in.Off)
			if err != nil {
				return 0, fmt.Errorf("insn %d: %w", pc, err)
			}
			if err := setDst(pc, dst, uint64(v)); err != nil {
				return 0, err
			}
			pc++
		case unix.BPF_ALU, unix.BPF_ALU64:
			var operand uint64
			if in.Code&unix.BPF_X != 0 {
				v, err := scalar(pc, src)
				if err != nil {
					return 0, err
				}
				operand = v
			} else {
				operand = uint64(int64(in.Imm))
			}
			var v uint64
			switch op := in.Code & 0xf0; {
			case op == unix.BPF_MOV:
				v = operand
			case op == unix.BPF_AND && class == unix.BPF_ALU:
				d, err := scalar(pc, dst)
				if err != nil {
					return 0, err
				}
				v = d & operand
			case op == unix.BPF_RSH && class == unix.BPF_ALU && in.Code&unix.BPF_X == 0:
				d, err := scalar(pc, dst)
				if err != nil {
					return 0, err
				}
				if in.Imm < 0 || in.Imm >= 32 {
					return 0, fmt.Errorf("insn %d: shift by %d", pc, in.Imm)
				}
				v = uint64(uint32(d) >> in.Imm)
			default:
				return 0, fmt.Errorf("insn %d: unsupported alu opcode %#x", pc, in.Code)
			}
			if class == unix.BPF_ALU {
				v = uint64(uint32(v)) // 32-bit ops zero-extend
			}
			if err := setDst(pc, dst, v); err != nil {
				return 0, err
			}
			pc++
		case unix.BPF_JMP:
			switch op := in.Code & 0xf0; {
			case in.Code == unix.BPF_JMP|unix.BPF_EXIT:
				v, err := scalar(pc, 0)
				if err != nil {
					return 0, err
				}
				if v > 1 {
					return 0, fmt.Errorf("insn %d: returns %d, want 0 or 1", pc, v)
				}
				return v, nil
			case in.Code == unix.BPF_JMP|unix.BPF_JA:
				pc += 1 + int(in.Off)
			case op == unix.BPF_JEQ || op == unix.BPF_JNE:
				d, err := scalar(pc, dst)
				if err != nil {
					return 0, err
				}
				operand := uint64(int64(in.Imm)) // sign-extended, as the kernel does
				if in.Code&unix.BPF_X != 0 {
					if operand, err = scalar(pc, src); err != nil {
						return 0, err
					}
				}
				if (d == operand) == (op == unix.BPF_JEQ) {
					pc += 1 + int(in.Off)
				} else {
					pc++
				}
			default:
				return 0, fmt.Errorf("insn %d: unsupported jump opcode %#x", pc, in.Code)
			}
		default:
			return 0, fmt.Errorf("insn %d: unsupported class in opcode %#x", pc, in.Code)
		}
	}
}

// checkCFG rejects what the verifier's check_cfg rejects for programs of
// this shape: jumps out of the program or backwards, falling off the end and
// unreachable instructions.
func checkCFG(prog []Insn) error {
	if len(prog) == 0 {
		return fmt.Errorf("empty program")
	}
	seen := make([]bool, len(prog))
	var visit func(pc int) error
	visit = func(pc int) error {
		for {
			if pc < 0 || pc >= len(prog) {
				return fmt.Errorf("control flow reaches %d, outside the program (%d insns)", pc, len(prog))
			}
			if seen[pc] {
				return nil
			}
			seen[pc] = true
			in := prog[pc]
			if in.Code&0x07 != unix.BPF_JMP {
				pc++
				continue
			}
			if in.Code == unix.BPF_JMP|unix.BPF_EXIT {
				return nil
			}
			if in.Off < 0 {
				return fmt.Errorf("insn %d: backward jump", pc)
			}
			target := pc + 1 + int(in.Off)
			if in.Code == unix.BPF_JMP|unix.BPF_JA {
				pc = target
				continue
			}
			if err := visit(target); err != nil {
				return err
			}
			pc++
		}
	}
	if err := visit(0); err != nil {
		return err
	}
	for pc, ok := range seen {
		if !ok {
			return fmt.Errorf("insn %d is unreachable", pc)
		}
	}
	return nil
}

// disasm renders prog for test failure messages.
func disasm(prog []Insn) string {
	var b strings.Builder
	for pc, in := range prog {
		fmt.Fprintf(&b, "%3d: code=%#02x dst=r%d src=r%d off=%d imm=%d\n", pc, in.Code, in.Dst(), in.Src(), in.Off, in.Imm)
	}
	return b.String()
}

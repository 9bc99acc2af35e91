package linux

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	o := ParseMountOptions([]string{"rbind", "ro", "nosuid", "rslave", "rro", "mode=755", "size=65536k", "rw"})
	if o.Flags&unix.MS_BIND == 0 || o.Flags&unix.MS_REC == 0 {
		t.Errorf("rbind: flags %#x lack MS_BIND|MS_REC", o.Flags)
	}
	if o.Flags&unix.MS_RDONLY != 0 {
		t.Errorf("rw after ro must clear MS_RDONLY, flags %#x", o.Flags)
	}
	if o.ClearFlags&unix.MS_RDONLY == 0 {
		t.Errorf("rw must be recorded as cleared")
	}
	if o.Flags&unix.MS_NOSUID == 0 {
		t.Errorf("nosuid missing")
	}
	if len(o.Propagation) != 1 || o.Propagation[0] != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("propagation %v", o.Propagation)
	}
	if o.RecAttrSet != unix.MOUNT_ATTR_RDONLY {
		t.Errorf("rro: attr %#x", o.RecAttrSet)
	}
	if got := o.DataString(); got != "mode=755,size=65536k" {
		t.Errorf("data %q", got)
	}
}

func TestPropagationFlags(t *testing.T) {
	if f, ok := PropagationFlags("rprivate"); !ok || f != unix.MS_PRIVATE|unix.MS_REC {
		t.Fatalf("rprivate: %#x %v", f, ok)
	}
	if _, ok := PropagationFlags("bogus"); ok {
		t.Fatal("bogus accepted")
	}
}

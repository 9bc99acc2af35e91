package runtime

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A hook without a timeout is still bounded.
func TestHookDefaultTimeout(t *testing.T) {
	old := defaultHookTimeout
	defaultHookTimeout = 1
	defer func() { defaultHookTimeout = old }()
	err := runHook(specs.Hook{Path: "/bin/sleep", Args: []string{"sleep", "30"}}, []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s (the default for a hook without a timeout)") {
		t.Fatalf("hung hook without timeout: %v", err)
	}
}

package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/warren-runtime/warren/internal/errdefs"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, ConfigName), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no config.json at all
		class   error
		want    []string // substrings of the message
	}{
		{
			name:  "missing",
			class: errdefs.ErrNotFound,
			want:  []string{"config.json", "not found"},
		},
		{
			name:    "syntax error reports line and column",
			content: ptr("{\n  \"ociVersion\": \"1.0.0\",\n  \"process\": {,\n}\n"),
			class:   errdefs.ErrInvalid,
			want:    []string{"config.json", "line 3, column 15", "byte offset"},
		},
		{
			name:    "truncated",
			content: ptr(`{"ociVersion": "1.0.0"`),
			class:   errdefs.ErrInvalid,
			want:    []string{"config.json", "malformed JSON", "line 1"},
		},
		{
			name:    "empty file",
			content: ptr(""),
			class:   errdefs.ErrInvalid,
			want:    []string{"config.json", "malformed JSON"},
		},
		{
			name:    "trailing garbage",
			content: ptr(`{"ociVersion": "1.0.0"} x`),
			class:   errdefs.ErrInvalid,
			want:    []string{"malformed JSON"},
		},
		{
			name:    "type error names the field",
			content: ptr("{\n\"ociVersion\": \"1.0.0\",\n\"process\": {\"args\": \"sh\"}\n}"),
			class:   errdefs.ErrInvalid,
			want:    []string{"config.json", "process.args", "cannot use JSON string", "line 3"},
		},
		{
			name:    "type error in nested number",
			content: ptr(`{"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": -1, "soft": 1}]}}`),
			class:   errdefs.ErrInvalid,
			want:    []string{"process.rlimits[0].hard"},
		},
		{
			name:    "top-level array",
			content: ptr(`[]`),
			class:   errdefs.ErrInvalid,
			want:    []string{"config.json", "(top level)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			if tc.content != nil {
				bundle = writeConfig(t, *tc.content)
			}
			s, _, err := LoadRaw(bundle)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want error", s)
			}
			t.Log(err)
			if !errors.Is(err, tc.class) {
				t.Errorf("error %q is not of class %v", err, tc.class)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			checkMessageStyle(t, err)
		})
	}
}

func TestLoadAcceptsUnknownFields(t *testing.T) {
	bundle := writeConfig(t, `{"ociVersion": "1.2.0", "process": {"args": ["true"], "cwd": "/", "futureField": 1}, "vendorThing": {"x": 1}}`)
	s, _, err := LoadRaw(bundle)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s.Version != "1.2.0" || s.Process == nil || len(s.Process.Args) != 1 || s.Process.Args[0] != "true" {
		t.Errorf("decoded %+v, want ociVersion 1.2.0 and args [true]", s)
	}
}

func TestLineCol(t *testing.T) {
	data := []byte("ab\ncd\n\nef")
	tests := []struct {
		offset    int64
		line, col int
	}{
		{0, 1, 1},
		{1, 1, 1},
		{2, 1, 2},
		{4, 2, 1},
		{5, 2, 2},
		{8, 4, 1},
		{100, 4, 2},
	}
	for _, tc := range tests {
		line, col := lineCol(data, tc.offset)
		if line != tc.line || col != tc.col {
			t.Errorf("lineCol(%d) = %d:%d, want %d:%d", tc.offset, line, col, tc.line, tc.col)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// checkMessageStyle enforces the house rules: lowercase start, no trailing
// period.
func checkMessageStyle(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" {
		t.Fatal("empty error message")
	}
	if r := []rune(msg)[0]; unicode.IsUpper(r) {
		t.Errorf("error %q starts with an upper-case letter", msg)
	}
	if strings.HasSuffix(msg, ".") {
		t.Errorf("error %q ends with a period", msg)
	}
}

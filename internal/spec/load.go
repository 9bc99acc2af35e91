// Package spec loads, validates and generates OCI runtime configurations
// (config.json) and describes what this build supports (the features document).
//
// It works on github.com/opencontainers/runtime-spec/specs-go types directly:
// there is no second config model. Every error wraps an errdefs class and names
// the JSON field path or file involved, so the CLI can print it unchanged.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// ConfigName is the file name of the bundle's configuration.
const ConfigName = "config.json"

// Load reads and decodes <bundle>/config.json. Unknown fields are ignored, as
// the runtime spec allows extensions. Load does not validate: call Validate.
func Load(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, ConfigName)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: config file not found (is %q a bundle directory?): %w", path, bundle, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("%s: cannot read config file: %v: %w", path, unwrapPathError(err), errdefs.ErrInvalid)
	}
	return decode(path, data)
}

// decode parses config data; name is used in errors only.
func decode(name string, data []byte) (*specs.Spec, error) {
	var s specs.Spec
	// json.Unmarshal (not a Decoder) so trailing garbage after the object is
	// reported instead of silently ignored.
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, describeJSONError(name, data, err)
	}
	return &s, nil
}

func describeJSONError(name string, data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset)
		return fmt.Errorf("%s: malformed JSON at line %d, column %d (byte offset %d): %s: %w",
			name, line, col, syn.Offset, syn.Error(), errdefs.ErrInvalid)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		line, col := lineCol(data, typ.Offset)
		return fmt.Errorf("%s: %s: cannot use JSON %s as %s (line %d, column %d): %w",
			name, field, typ.Value, typ.Type, line, col, errdefs.ErrInvalid)
	default:
		return fmt.Errorf("%s: cannot decode config: %v: %w", name, err, errdefs.ErrInvalid)
	}
}

// lineCol converts a byte offset into a 1-based line and column. The json
// package reports the offset just past the offending byte, so offset 0 and
// offsets beyond the end are clamped.
func lineCol(data []byte, offset int64) (line, col int) {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// unwrapPathError drops the os.PathError wrapper whose path is already printed.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Package spec loads, validates and generates OCI runtime configurations
// (config.json) and describes what this build supports (the features document).
//
// It works on github.com/opencontainers/runtime-spec/specs-go types directly:
// there is no second config model. Every error wraps an errdefs class and names
// the JSON field path or file involved, so the CLI can print it unchanged.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	jsonv1 "github.com/go-json-experiment/json/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// ConfigName is the file name of the bundle's configuration.
const ConfigName = "config.json"

// LoadRaw reads and decodes <bundle>/config.json, and returns the file's
// bytes too, which the runtime hands on as they are (to the container's
// init, into its state) instead of encoding the decoded spec again. Unknown
// fields are ignored, as the runtime spec allows extensions. LoadRaw does
// not validate: call Validate.
func LoadRaw(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, ConfigName)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s: config file not found (is %q a bundle directory?): %w", path, bundle, errdefs.ErrNotFound)
		}
		return nil, nil, fmt.Errorf("%s: cannot read config file: %v: %w", path, unwrapPathError(err), errdefs.ErrInvalid)
	}
	s, err := decode(path, data)
	if err != nil {
		return nil, nil, err
	}
	return s, data, nil
}

// decode parses config data; name is used in errors only.
func decode(name string, data []byte) (*specs.Spec, error) {
	var s specs.Spec
	// Unmarshal (not a Decoder) so trailing garbage after the object is
	// reported instead of silently ignored. The v1-compatible decoder of
	// the json/v2 prototype: encoding/json builds the encoders of every
	// type it decodes into (1-2 ms for the spec's, at every start of a
	// process, twice per container); this one decodes the same way
	// without that cost.
	if err := jsonv1.Unmarshal(data, &s); err != nil {
		return nil, describeJSONError(name, data, err)
	}
	return &s, nil
}

func describeJSONError(name string, data []byte, err error) error {
	var syn *jsonv1.SyntaxError
	var typ *jsonv1.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset)
		return fmt.Errorf("%s: malformed JSON at line %d, column %d (byte offset %d): %s: %w",
			name, line, col, syn.Offset, syn.Error(), errdefs.ErrInvalid)
	case errors.As(err, &typ):
		field := fieldPath(typ.Field)
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

// fieldPath writes the decoder's "process.rlimits.0.hard" as the field
// names of validation errors do: "process.rlimits[0].hard".
func fieldPath(p string) string {
	parts := strings.Split(p, ".")
	var b strings.Builder
	for i, part := range parts {
		if _, err := strconv.Atoi(part); err == nil && i > 0 {
			b.WriteString("[" + part + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
	}
	return b.String()
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

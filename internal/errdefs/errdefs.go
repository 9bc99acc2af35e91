// Package errdefs holds the error classes shared by every layer of warren.
//
// Errors are wrapped at the point of failure with %w so that callers can test
// the class with errors.Is while the message keeps the path, field or id
// involved. The CLI maps classes to exit codes; nothing below it needs to.
package errdefs

import "errors"

var (
	// ErrNotFound: the container, file or object named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: an object with that name already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the input (config.json, flag, argument) is malformed or inconsistent.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotSupported: valid input asking for something this build or kernel cannot do.
	ErrNotSupported = errors.New("not supported")
	// ErrState: the operation is not legal in the container's current state.
	ErrState = errors.New("invalid state")
	// ErrLocked: another warren process holds the container's lock.
	ErrLocked = errors.New("locked")
	// ErrCorrupt: a state file is truncated, garbage or of an unknown
	// version; `delete --force` still removes the container.
	ErrCorrupt = errors.New("corrupt state")
)

// IsNotFound reports whether err is of class ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsExists reports whether err is of class ErrExists.
func IsExists(err error) bool { return errors.Is(err, ErrExists) }

// IsInvalid reports whether err is of class ErrInvalid.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// IsNotSupported reports whether err is of class ErrNotSupported.
func IsNotSupported(err error) bool { return errors.Is(err, ErrNotSupported) }

// IsState reports whether err is of class ErrState.
func IsState(err error) bool { return errors.Is(err, ErrState) }

package images

import "crypto/tls"

// insecureTLS is for --insecure registries: HTTPS without verification
// (plain HTTP needs no TLS; name.Insecure lets the client fall back to it).
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
}

module github.com/warren-runtime/warren

go 1.26.8

require (
	github.com/cyphar/filepath-securejoin v0.7.0
	github.com/go-json-experiment/json v1.27.2
	github.com/opencontainers/runtime-spec v1.3.0
	github.com/seccomp/libseccomp-golang v0.11.1
	github.com/urfave/cli v1.22.16
	golang.org/x/sys v0.50.0
)

require (
	cyphar.com/go-pathrs v0.2.5 // indirect
	github.com/cpuguy83/go-md2man/v2 v2.0.5 // indirect
	github.com/russross/blackfriday/v2 v2.1.0 // indirect
)

module github.com/quail-mta/quail

go 1.26.0

// Programs speak protocols over fixed descriptors (checkpassword reads
// fd 3; qmail-send talks on 0-6). Go's cgroup-aware GOMAXPROCS keeps two
// cgroup files open from start-up, and when such a descriptor was not
// given they would take its number: a missing fd 3 would read as a cgroup
// file. Turning it off also saves start-up work on every exec.
godebug containermaxprocs=0

require (
	github.com/emersion/go-message v0.18.2
	github.com/spf13/pflag v1.1.0
	golang.org/x/sys v0.50.0
)

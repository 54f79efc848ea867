package cdb_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/quail-mta/quail/pkg/cdb"
)

func Example() {
	dir, err := os.MkdirTemp("", "cdb-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "users.cdb")

	w, err := cdb.Create(path, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Abort() // removes the temporary file unless Commit succeeded
	w.Add([]byte("alias"), []byte("7"))
	w.Add([]byte("joe"), []byte("1001"))
	w.Add([]byte("joe"), []byte("1002"))
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	r, err := cdb.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if data, ok, err := r.Get([]byte("alias")); err == nil && ok {
		fmt.Printf("alias: %s\n", data)
	}
	for data, err := range r.All([]byte("joe")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("joe: %s\n", data)
	}
	// Output:
	// alias: 7
	// joe: 1001
	// joe: 1002
}

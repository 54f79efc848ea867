// Package cdb reads and writes constant databases in D. J. Bernstein's cdb
// format, byte for byte as cdbmake, tcprules and qmail-newu produce them.
//
// A cdb is an on-disk hash table built once and then only read: a lookup
// costs a few small reads and needs no locking, and a database is
// replaced atomically by writing a new file and renaming it into place.
//
// # Format
//
// All integers are unsigned 32-bit little-endian, so a database is at most
// 4 GiB. A file is, in order:
//
//   - a 2048-byte header of 256 (position, slot count) pairs, one for
//     each hash table;
//   - the records in insertion order, each (key length, data length, key,
//     data);
//   - the 256 hash tables, table 0 first. The records region therefore
//     ends where table 0 begins.
//
// The hash of a key is h = 5381, then h = ((h << 5) + h) ^ c for every
// byte c. Table h&255 holds the record: a table with n entries has 2n
// slots of (hash, record position), with position 0 marking an empty
// slot (no record can start at 0, the header is there). Entries are
// placed in insertion order, each starting at slot (h>>8) % 2n and
// probing forward with wrap-around. An empty table has no slots and its
// header position is simply where it would have started.
//
// Keys may repeat; [Reader.All] returns every value of a key in
// insertion order, [Reader.Get] the first one.
//
// # Writing durably
//
// [Create] builds the database in a temporary file next to its final
// path, and [Writer.Commit] then writes the hash tables and header,
// flushes, sets the permissions, fsyncs the file, closes it, renames it
// over the target and finally fsyncs the directory. After a crash, the
// path therefore holds either the complete old database or the complete
// new one, and once Commit returns nil the new one survives power loss.
// Readers that opened the old file keep reading the old content.
package cdb

import (
	"encoding/binary"
	"errors"
)

const headerSize = 256 * 8 // 256 (position, slot count) pairs

// ErrCorrupt is wrapped by errors reporting a database whose structure
// is inconsistent (positions or lengths outside the file, bad header).
var ErrCorrupt = errors.New("cdb: corrupt database")

// ErrTooLarge is wrapped by the error [Writer.Add] returns when the
// record would make the database exceed the format's 4 GiB limit.
var ErrTooLarge = errors.New("cdb: database would exceed 4 GiB")

// hashKey is the cdb hash function (Bernstein's "times 33, xor").
func hashKey(key []byte) uint32 {
	h := uint32(5381)
	for _, c := range key {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

var le = binary.LittleEndian

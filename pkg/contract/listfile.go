package contract

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/quail-mta/quail/pkg/atomicfile"
	"github.com/quail-mta/quail/pkg/sysfile"
)

// editList rewrites a control list file line by line, keeping comments,
// blank lines and entries it does not touch exactly as the admin wrote
// them. keep decides for each entry (trailing whitespace removed) whether
// it stays; add is appended. A missing file counts as empty, and the file
// is only written when something changed.
func editList(path string, keep func(entry string) bool, add ...string) error {
	data, err := sysfile.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	text := string(data)
	var out []string
	changed := false
	if text != "" {
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			entry := strings.TrimRight(line, " \t")
			if entry != "" && entry[0] != '#' && !keep(entry) {
				changed = true
				continue
			}
			out = append(out, line)
		}
	}
	for _, a := range add {
		out = append(out, a)
		changed = true
	}
	if !changed {
		return nil
	}
	content := strings.Join(out, "\n")
	if len(out) > 0 {
		content += "\n"
	}
	return atomicfile.WriteFile(path, []byte(content), 0o644)
}

// keyOf is the part of an entry before the first ':', lower-cased: the
// domain of a virtualdomains, quotas or contractips entry.
func keyOf(entry string) string {
	k, _, _ := strings.Cut(entry, ":")
	return strings.ToLower(k)
}

package inject

import (
	"errors"
	"fmt"
	"strings"
)

// sendmail's callers write options the way getopt(3) reads them:
// clustered (-ti), with the argument in the same word (-fuser@host,
// -oem, -FCronDaemon) or the next (-f user@host). pflag reads neither
// -oem nor -FCronDaemon that way, hence this small parser.

// optKind is what an option letter takes.
type optKind int

const (
	optFlag       optKind = iota + 1 // no argument: -t
	optArg                           // the rest of the word, else the next word: -fADDR, -f ADDR
	optRestOfWord                    // the rest of the word, if any, and never the next one (-J, -E)
)

// errHelp is --help.
var errHelp = errors.New("help requested")

// optError is a command-line option that is unknown or lacks its
// argument.
type optError struct {
	opt     string // as written: "-q", "--version"
	missing bool   // the option needs an argument and has none
}

func (e *optError) Error() string {
	if e.missing {
		return fmt.Sprintf("option %s needs an argument", e.opt)
	}
	return "unknown option " + e.opt
}

// getopt reads options as getopt(3) does, except that, like GNU getopt,
// it finds options after operands too (sendmail rcpt -f sender); "--"
// ends the options, and "-" alone is an operand. visit is called for
// each option in order. It returns the operands.
func getopt(args []string, spec map[byte]optKind, visit func(opt byte, arg string) error) ([]string, error) {
	var operands []string
	for i := 0; i < len(args); i++ {
		word := args[i]
		switch {
		case word == "--":
			return append(operands, args[i+1:]...), nil
		case word == "--help":
			return nil, errHelp
		case strings.HasPrefix(word, "--"):
			return nil, &optError{opt: word}
		case len(word) < 2 || word[0] != '-':
			operands = append(operands, word)
			continue
		}
		for j := 1; j < len(word); j++ {
			c := word[j]
			var arg string
			switch spec[c] {
			case optFlag:
			case optRestOfWord:
				arg, j = word[j+1:], len(word)
			case optArg:
				switch {
				case j+1 < len(word):
					arg = word[j+1:]
				case i+1 < len(args):
					i++
					arg = args[i]
				default:
					return nil, &optError{opt: "-" + string(c), missing: true}
				}
				j = len(word)
			default:
				return nil, &optError{opt: "-" + string(c)}
			}
			if err := visit(c, arg); err != nil {
				return nil, err
			}
		}
	}
	return operands, nil
}

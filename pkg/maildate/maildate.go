// Package maildate formats dates the way qmail writes them in Received
// lines, bounces and headers: always UTC, "-0000", no weekday, the day
// not padded: "26 Sep 1995 04:46:54 -0000".
package maildate

import (
	"strconv"
	"time"
)

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Format is qmail's date822fmt without the trailing newline.
func Format(t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, 32)
	b = strconv.AppendInt(b, int64(t.Day()), 10)
	b = append(b, ' ')
	b = append(b, months[t.Month()-1]...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(t.Year()), 10)
	b = append(b, ' ')
	b = two(b, t.Hour())
	b = append(b, ':')
	b = two(b, t.Minute())
	b = append(b, ':')
	b = two(b, t.Second())
	b = append(b, " -0000"...)
	return string(b)
}

func two(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

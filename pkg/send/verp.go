package send

import "strings"

// senderFor is the envelope sender one delivery gets: a VERP request
// ("owner-@host-@[]") becomes owner-box=rhost@host for recipient
// box@rhost, as qmail-send's senderadd does; other senders pass through.
func senderFor(sender, recipient string) string {
	if !strings.HasSuffix(sender, "-@[]") {
		return sender
	}
	i := len(sender)
	j := strings.LastIndexByte(sender[:i-4], '@')
	k := strings.LastIndexByte(recipient, '@')
	if j < 0 || k < 0 || j+5 > i {
		return sender
	}
	return sender[:j] + recipient[:k] + "=" + recipient[k+1:] + "@" + sender[j+1:i-4]
}

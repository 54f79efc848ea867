package local

import (
	"github.com/quail-mta/quail/pkg/dotqmail"
	"github.com/quail-mta/quail/pkg/quota"
)

// errMailboxFull defers a delivery into a contract's mailbox while the
// contract is over its disk quota: qmail-send retries, and bounces the
// message only after queuelifetime (SPEC §8). 4.2.2 is RFC 3463's
// "mailbox full".
var errMailboxFull = tempFailure("Sorry, the mailbox is full. (#4.2.2)")

// checkQuota decides whether a delivery may go into the Maildir dir: the
// message, with prefix bytes of header lines before it. It returns the
// contract to charge afterwards (quota.Add), or "" when dir is not one
// of a hosted domain's mailboxes (quota.DomainOf): those deliveries are
// neither checked nor counted.
func (d *delivery) checkQuota(dir string, prefix int) (string, error) {
	if d.req.Root == "" {
		return "", nil
	}
	domain, ok, err := quota.DomainOf(d.req.Root, dir)
	if err != nil {
		return "", tempFailure("Unable to read the domain's mailbox list: " + err.Error() + ". (#4.3.0)")
	}
	if !ok {
		return "", nil
	}
	st, err := d.msg.Stat()
	if err != nil {
		return "", dotqmail.Failure("Unable to read message: "+dotqmail.SysText(err)+". (#4.3.0)", false)
	}
	over, err := quota.Over(d.req.Root, domain, st.Size()+int64(prefix))
	if err != nil {
		return "", tempFailure("Unable to check the domain's disk quota: " + err.Error() + ". (#4.3.0)")
	}
	if over {
		return "", errMailboxFull
	}
	return domain, nil
}

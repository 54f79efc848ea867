// Package send is qmail-send: the scheduler that takes queued messages
// from todo/, sorts their recipients into local and remote, hands each
// delivery to qmail-lspawn or qmail-rspawn, retries temporary failures on
// qmail's schedule, bounces permanent ones and removes finished messages
// through qmail-clean.
//
// It is one long-lived process: no process is created per message by the
// scheduler itself (bounces are injected through qmail-queue, one process
// per bounce). Its state lives in the queue files, exactly as qmail keeps
// it, so it can be stopped at any instant and started again, and a queue
// moves between qmail and quail.
package send

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quail-mta/quail/pkg/control"
	"github.com/quail-mta/quail/pkg/routing"
	"github.com/quail-mta/quail/pkg/spawn"
	"github.com/quail-mta/quail/queue"
)

// Channels.
const (
	chLocal  = 0
	chRemote = 1
)

var chanName = [2]string{"local", "remote"}

// chanskip is qmail's retry spacing: the n-th retry comes about
// (chanskip·n)² seconds after the message was born.
var chanskip = [2]float64{10, 20}

// ScanInterval is how often todo/ is scanned without a trigger, as qmail
// does every 25 minutes.
const ScanInterval = 1500 * time.Second

// Config is what qmail-send is given by qmail-start.
type Config struct {
	Root string
	Log  io.Writer // qmail-send's fd 0
	// The spawners and qmail-clean: commands go to To*, answers come from
	// From* (fds 1 to 6 in qmail's wiring).
	ToLocal, ToRemote, ToClean       io.Writer
	FromLocal, FromRemote, FromClean io.Reader
	// Bounce injects a bounce and returns the queue program's pid (nil:
	// the queue program under Root; tests may replace it).
	Bounce func(b Bounce) (qp int, err error)
	// Signals, for tests; nil means the process's SIGTERM, SIGALRM and
	// SIGHUP.
	Signals <-chan os.Signal
	// Ready, when set, is closed once those signals are caught
	// (ReadyEnv).
	Ready io.Closer

	// beforeSync, for tests, runs before each chunk's fsyncs, off the
	// loop.
	beforeSync func()
	// directMax, for tests, replaces directMax when not 0.
	directMax int
}

// ReadyEnv names the descriptor qmail-start gives qmail-send to close
// once it catches TERM, HUP and ALRM. qmail-start passes a signal on
// only after that: before, the Go runtime would let it kill qmail-send.
// A qmail-send that knows nothing of it closes it by exiting.
const ReadyEnv = "QMAILSEND_READY_FD"

// Bounce is a bounce to inject: who gets it, from whom, and the message.
type Bounce struct {
	Sender, Recipient string
	Message           io.Reader
}

type channel struct {
	to      io.Writer
	results chan spawn.Result
	dead    chan error
	limit   int // min(concurrency control, spawner's byte)
	slots   []*delivery
	used    int
	due     jobHeap // jobs waiting for their next attempt
	active  []*job  // jobs with a pass in progress
	// batch is the most recipients one delivery may carry: 1 (qmail's
	// protocol) until the spawner answers the probe for the batch
	// extension with more. probing holds slot probeSlot meanwhile, and
	// the channel starts nothing until the answer comes or probeWait
	// has passed, so the first deliveries are batched too.
	batch        int
	probing      bool
	probeTimeout time.Time
}

// probeWait is how long a channel waits for the probe's answer before it
// delivers one recipient at a time. Any spawner answers at once (qmail's
// refuses the probe as a malformed command).
const probeWait = 5 * time.Second

// waiting reports whether the channel holds its deliveries for the
// probe's answer.
func (ch *channel) waiting(now time.Time) bool {
	return ch.probing && now.Before(ch.probeTimeout)
}

// MaxBatch is the most recipients of one message qmail-send hands
// qmail-rspawn in one delivery (one SMTP transaction).
const MaxBatch = 100

// probeSlot is the slot the batch probe uses.
const probeSlot = 0

// free is how many slots can take a delivery.
func (ch *channel) free() int {
	n := len(ch.slots) - ch.used
	if ch.probing {
		n--
	}
	return n
}

type message struct {
	id     uint64
	birth  time.Time
	sender string
	jobs   [2]*job
	// bounceRetry is set when injecting its bounce failed; retried later.
	bounceRetry time.Time
	// bounced is set once its bounce is queued: a retry then only
	// removes bounce/N.
	bounced bool
	// direct marks a message delivered straight from todo/N (see
	// startDirect): it has no info/ or local/ file, and todo/N is its
	// record on disk until it ends. toWrite: its delivery deferred, so
	// its files are to be written as qmail's preprocessing writes them.
	// finished: it ended, and qmail-clean is to remove todo/N.
	direct, toWrite, finished bool
}

type job struct {
	msg    *message
	ch     int
	next   time.Time
	recs   []queue.Record
	cursor int // records before it have started in this pass
	flight int
	dying  bool
	index  int // in the heap, or -1
	// This pass's remote batches: started marks records handed to a
	// delivery; keyOf[i] is record i's group (recipients sharing domain
	// and envelope sender), groups[k] the group's records not yet
	// started, in file order. Nil for local jobs.
	started []bool
	keyOf   []int
	groups  [][]int
	// mem is a direct message's local/ file, kept in memory instead.
	mem []byte
}

// delivery is one spawn command: one recipient, or a remote batch.
type delivery struct {
	job  *job
	recs []queue.Record
	nums []int // the log's delivery number of each recipient
}

// Sender is the running scheduler.
type Sender struct {
	cfg      Config
	q        queue.Queue
	ctl      control.Dir
	log      logger
	route    *routing.Table
	lifetime time.Duration
	bounceTo bounceConfig
	chans    [2]*channel
	msgs     map[uint64]*message
	// unsent are the finished messages whose bounce could not be
	// injected yet; kept apart so no event has to scan every message.
	unsent map[uint64]*message
	clean  *bufio.Reader
	// todo holds the ids read from todo/ not yet preprocessed; scanBuf
	// and scanIDs are the buffers the next scan reads into (readTodo).
	todo    []uint64
	scanBuf []byte
	scanIDs []uint64
	// syncing holds the ids of the chunk whose fsyncs are in flight;
	// synced brings the chunk back (preprocessSome).
	syncing map[uint64]bool
	synced  chan synced
	// foop holds the finished messages whose mess/ files qmail-clean is
	// to remove, in one batch before the loop next waits; directDone
	// the finished direct messages, whose todo/N goes first.
	foop       []uint64
	directDone []uint64
	// directWaiting counts the direct messages whose delivery has not
	// started yet (directRoom).
	directWaiting int
	// cleanLost is set when qmail-clean is gone: qmail-send then exits
	// with it once its deliveries end.
	cleanLost error
	delnum    int
	exiting   bool
	now       func() time.Time
}

type bounceConfig struct {
	from, host, doubleTo, doubleHost string
}

// ErrRunning means another qmail-send holds the queue.
var ErrRunning = errors.New("qmail-send is already running")

// Run is qmail-send. It returns nil after a clean stop on SIGTERM.
func Run(cfg Config) error {
	s := &Sender{cfg: cfg, q: queue.New(cfg.Root), ctl: control.New(cfg.Root), log: logger{w: cfg.Log, buf: bufio.NewWriterSize(cfg.Log, 16<<10)},
		msgs: map[uint64]*message{}, unsent: map[uint64]*message{}, now: time.Now, clean: bufio.NewReader(cfg.FromClean),
		syncing: map[uint64]bool{}, synced: make(chan synced, 1)}
	defer s.log.flush()
	// Caught from the start: qmail-start passes on a TERM (or HUP, ALRM)
	// as soon as we run, and one that came while we start up must wait
	// for the loop, not kill us.
	sigs := cfg.Signals
	if sigs == nil {
		c := make(chan os.Signal, 4)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGALRM, syscall.SIGHUP)
		defer signal.Stop(c)
		sigs = c
	}
	if cfg.Ready != nil {
		cfg.Ready.Close()
	}
	if err := s.readControls(); err != nil {
		s.log.printf("alert: cannot start: unable to read controls: %s", safe(err.Error()))
		return err
	}
	mutex, err := os.OpenFile(s.q.SendMutex(), os.O_RDWR, 0)
	if err != nil {
		s.log.printf("alert: cannot start: unable to open mutex")
		return err
	}
	defer mutex.Close()
	if err := syscall.Flock(int(mutex.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		s.log.printf("alert: cannot start: qmail-send is already running")
		return ErrRunning
	}
	// The mutex makes this the only qmail-send of the queue, so the
	// only user of its spares: what a crash left cooling can go.
	spares := s.q.SendSpares()
	if err := spares.Clear(); err != nil {
		s.log.printf("warning: unable to keep spare files in info/: %s; finished files are deleted instead; check the filesystem under queue/", safe(err.Error()))
	}
	spareErrs := make(chan error, 1)
	spares.FlushAfter(spareDelay, func(err error) {
		select {
		case spareErrs <- err:
		default: // one report waiting is enough
		}
	})
	defer spares.Flush()

	trigger, keepOpen, err := openTrigger(s.q.Trigger())
	if err != nil {
		s.log.printf("alert: cannot start: unable to open %s: %s", s.q.Trigger(), safe(err.Error()))
		return err
	}
	defer trigger.Close()
	defer keepOpen.Close()

	for c, pipes := range [2]struct {
		to   io.Writer
		from io.Reader
	}{{cfg.ToLocal, cfg.FromLocal}, {cfg.ToRemote, cfg.FromRemote}} {
		// Only qmail-rspawn is asked about batches: the local channel
		// stays qmail's protocol, byte for byte.
		ch, err := startChannel(pipes.to, pipes.from, c == chRemote)
		if err != nil {
			s.log.printf("alert: cannot start: hath the daemon spawn no fire?")
			return err
		}
		s.chans[c] = ch
	}
	if err := s.applyConcurrency(); err != nil {
		return err
	}

	triggered := make(chan struct{}, 1)
	go readTrigger(trigger, triggered)

	s.recover()
	s.scanTodo()
	s.cleanup()
	s.status()
	return s.loop(sigs, triggered, spareErrs)
}

func (s *Sender) readControls() error {
	route, err := routing.Load(s.ctl)
	if err != nil {
		return err
	}
	lifetime, err := s.ctl.Int("queuelifetime")
	if err != nil {
		return err
	}
	var b bounceConfig
	for _, f := range []struct {
		name string
		dst  *string
	}{{"bouncefrom", &b.from}, {"bouncehost", &b.host}, {"doublebounceto", &b.doubleTo}, {"doublebouncehost", &b.doubleHost}} {
		if *f.dst, err = s.ctl.String(f.name); err != nil {
			return err
		}
	}
	s.route, s.lifetime, s.bounceTo = route, time.Duration(lifetime)*time.Second, b
	return nil
}

// applyConcurrency sets each channel's limit from control and the
// spawner's announced maximum (qmail caps both at 120; 0 holds the
// channel).
func (s *Sender) applyConcurrency() error {
	for c, name := range []string{"concurrencylocal", "concurrencyremote"} {
		n, err := s.ctl.Int(name)
		if err != nil {
			s.log.printf("alert: cannot start: unable to read controls: %s", safe(err.Error()))
			return err
		}
		ch := s.chans[c]
		ch.limit = min(int(n), len(ch.slots), spawn.Limit)
	}
	return nil
}

// startChannel reads the spawner's limit byte and, when probe is set,
// asks it whether it takes batches (see package spawn).
func startChannel(to io.Writer, from io.Reader, probe bool) (*channel, error) {
	br := bufio.NewReader(from)
	b, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	ch := &channel{to: to, results: make(chan spawn.Result, 16), dead: make(chan error, 1), slots: make([]*delivery, int(b)), batch: 1}
	if probe && len(ch.slots) > probeSlot {
		if _, err := to.Write(spawn.Probe(probeSlot).Encode()); err != nil {
			return nil, err
		}
		ch.probing, ch.probeTimeout = true, time.Now().Add(probeWait)
	}
	go func() {
		// Batch answers are read only from a spawner that said it
		// sends them; until then, qmail's one report per answer.
		probing, max := ch.probing, 0
		for {
			var r spawn.Result
			var err error
			if max > 1 {
				r, err = spawn.ReadBatchResult(br, max)
			} else {
				r, err = spawn.ReadResult(br)
			}
			if err != nil {
				ch.dead <- err
				return
			}
			if probing && r.Slot == probeSlot {
				probing, max = false, spawn.BatchSize(r.Report)
			}
			ch.results <- r
		}
	}()
	return ch, nil
}

// openTrigger opens the FIFO for reading and keeps a writer open on it
// too, so reads block until an injector writes instead of returning EOF
// whenever no injector has it open.
func openTrigger(path string) (r, w *os.File, err error) {
	r, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	w, err = os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, w, nil
}

func readTrigger(f *os.File, triggered chan<- struct{}) {
	buf := make([]byte, 64)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
		select {
		case triggered <- struct{}{}:
		default:
		}
	}
}

func (s *Sender) loop(sigs <-chan os.Signal, triggered <-chan struct{}, spareErrs <-chan error) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	scan := time.NewTicker(ScanInterval)
	defer scan.Stop()
	cleanup := time.NewTicker(CleanupInterval)
	defer cleanup.Stop()
	for {
		s.drainResults()
		s.schedule()
		s.cleanFinished()
		if s.exiting && s.chans[chLocal].used == 0 && s.chans[chRemote].used == 0 && len(s.syncing) == 0 {
			s.saveSchedule()
			s.log.printf("status: exiting")
			return s.cleanLost
		}
		timer.Reset(s.untilNext())
		s.log.flush()
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGTERM:
				s.exiting = true
				s.status()
			case syscall.SIGALRM:
				s.allDueNow()
			case syscall.SIGHUP:
				if err := s.readControls(); err != nil {
					s.log.printf("alert: unable to reread controls: %s", safe(err.Error()))
				} else if err := s.applyConcurrency(); err != nil {
					s.log.printf("alert: unable to reread controls: %s", safe(err.Error()))
				}
			}
		case <-triggered:
			s.scanTodo()
		case <-scan.C:
			s.scanTodo()
		case <-cleanup.C:
			s.cleanup()
		case err := <-spareErrs:
			s.log.printf("warning: unable to keep spare files in info/: %s; finished files are deleted instead; check the filesystem under queue/", safe(err.Error()))
		case c := <-s.synced:
			s.commitChunk(c)
		case <-timer.C:
			if len(s.todo) > 0 {
				s.preprocessSome()
			}
		case r := <-s.chans[chLocal].results:
			s.result(chLocal, r)
		case r := <-s.chans[chRemote].results:
			s.result(chRemote, r)
		case <-s.chans[chLocal].dead:
			s.log.printf("alert: oh no! lost spawn connection! dying...")
			return errors.New("lost qmail-lspawn")
		case <-s.chans[chRemote].dead:
			s.log.printf("alert: oh no! lost spawn connection! dying...")
			return errors.New("lost qmail-rspawn")
		}
	}
}

// untilNext is the wait until the earliest scheduled event. A due job
// counts only where schedule could start it: a channel that is full, or
// holding its deliveries for the probe, or any channel while exiting,
// starts nothing until a result or the probe's timeout (and an exiting
// qmail-send retries no bounce), and a result ends the wait anyway.
// Counting it would make the loop a busy wait for as long as the
// channel stays full, which under load is most of the time. A probe
// timeout counts only until it has passed: from then on the channel
// delivers one recipient at a time, answer or not.
func (s *Sender) untilNext() time.Duration {
	if len(s.todo) > 0 && len(s.syncing) == 0 && !s.exiting {
		return 0 // more of todo/ to preprocess, after whatever is ready
	}
	now := s.now()
	next := now.Add(time.Hour)
	for _, ch := range s.chans {
		if ch.waiting(now) && ch.probeTimeout.Before(next) {
			next = ch.probeTimeout
		}
		canStart := !s.exiting && ch.used < ch.limit && ch.free() > 0 && !ch.waiting(now)
		if canStart && len(ch.due) > 0 && ch.due[0].next.Before(next) {
			next = ch.due[0].next
		}
	}
	for _, m := range s.unsent {
		if !s.exiting && m.bounceRetry.Before(next) {
			next = m.bounceRetry
		}
	}
	d := next.Sub(now)
	if d < 0 {
		return 0
	}
	return d + 10*time.Millisecond
}

// drainResults handles every delivery result that has arrived, so that
// each turn of the loop frees all the slots it can before it schedules:
// one result per turn would leave finished slots idle behind whatever
// else the turn does.
func (s *Sender) drainResults() {
	for c, ch := range s.chans {
		for {
			select {
			case r := <-ch.results:
				s.result(c, r)
				continue
			default:
			}
			break
		}
	}
}

// cleanFinished has qmail-clean remove the mess/ files of the messages
// finished in this turn, in one batch. A direct message's todo/N goes
// before its mess/ file: a crash between the two leaves an orphan
// mess/ file for cleanup, never a todo/N without its message.
func (s *Sender) cleanFinished() {
	for i, err := range s.cleanCmds("todo", s.directDone) {
		id := s.directDone[i]
		// An error after todo/N went (intd/N stayed) is done with:
		// the foop removes intd/N too.
		if err != nil && exists(s.q.Todo(id)) {
			// Still finished and in msgs: the next scan of todo/
			// tries again (preprocessSome).
			s.log.printf("warning: trouble with todo/%d: %s; will try again later", id, safe(err.Error()))
			continue
		}
		delete(s.msgs, id)
		s.foop = append(s.foop, id)
	}
	s.directDone = s.directDone[:0]
	for i, err := range s.cleanCmds("foop", s.foop) {
		if err != nil {
			s.log.printf("warning: qmail-clean unable to clean up mess/%s", messPath(s.foop[i]))
		}
	}
	s.foop = s.foop[:0]
}

func (s *Sender) status() {
	suffix := ""
	if s.exiting {
		suffix = " exitasap"
	}
	s.log.printf("status: local %d/%d remote %d/%d%s", s.chans[chLocal].used, s.chans[chLocal].limit,
		s.chans[chRemote].used, s.chans[chRemote].limit, suffix)
}

// nextRetry is qmail's schedule: birth + (floor(sqrt(age)) + chanskip)².
func nextRetry(birth, now time.Time, c int) time.Time {
	age := now.Sub(birth).Seconds()
	if age < 0 {
		age = 0
	}
	n := math.Floor(math.Sqrt(age)) + chanskip[c]
	return birth.Add(time.Duration(n*n) * time.Second)
}

func (s *Sender) allDueNow() {
	now := s.now()
	for _, ch := range s.chans {
		for _, j := range ch.due {
			j.next = now
		}
		ch.due.fix()
	}
	for _, m := range s.unsent {
		m.bounceRetry = now
	}
}

// saveSchedule stores each waiting job's next attempt as the mtime of
// its local/ or remote/ file, as qmail-send does on exit, so a restart
// keeps the schedule.
func (s *Sender) saveSchedule() {
	for c, ch := range s.chans {
		for _, j := range append(append([]*job{}, ch.due...), ch.active...) {
			os.Chtimes(s.jobPath(j.msg.id, c), j.next, j.next)
		}
	}
}

func (s *Sender) jobPath(id uint64, c int) string {
	if c == chLocal {
		return s.q.Local(id)
	}
	return s.q.Remote(id)
}

// messPath is the S/N name the spawn protocol uses.
func messPath(id uint64) string {
	return fmt.Sprintf("%d/%d", id%queue.Split, id)
}

func splitDir(q queue.Queue, dir string, id uint64) string {
	return filepath.Join(q.Dir, dir, fmt.Sprint(id%queue.Split))
}

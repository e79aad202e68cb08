package servicetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/veilchat/veil/session"
)

// racers is how many calls the race tests make at once. They call the
// Services directly: a helper that may stop the test must not run off the
// test's goroutine.
const racers = 5

// race runs call for each racer at once and returns the errors.
func race(call func(i int) error) []error {
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = call(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one of errs is nil and that the others
// match lost, and returns the winner.
func oneWinner(t *testing.T, what string, errs []error, lost error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("%s: racers %d and %d both won", what, winner, i)
		case !errors.Is(err, lost):
			t.Fatalf("%s: racer %d: %v, want nil or %v", what, i, err, lost)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no racer won: %v", what, errs)
	}
	return winner
}

// testRaceAppend has members append different records on one head at
// once: one is stored, the others get ErrConflict, and the session holds
// the winner's record and grants only.
func testRaceAppend(t *testing.T, f *fixture) {
	s := f.create(t, alice, bob, carol)
	callers := []string{alice, bob, carol, alice, bob}
	steps := make([]step, racers)
	for i, c := range callers {
		steps[i] = s.next(t, c, true) // each with its own commitment and grants
	}
	winner := oneWinner(t, "Append", race(func(i int) error {
		return f.as(callers[i]).Append(t.Context(), s.id, steps[i].raw, steps[i].grants)
	}), session.ErrConflict)
	s.apply(steps[winner])
	if d := s.diff(t); d != "" {
		t.Errorf("the session after the race (-want +got)\n%s", d)
	}
}

// testRaceCreate has users create a session for one channel at once, each
// with its own genesis: one is stored, and the others get a
// *SessionExistsError naming it.
func testRaceCreate(t *testing.T, f *fixture) {
	cid := f.channel()
	creators := []string{alice, bob, carol, dave, mallory}
	gens := make([]gen, racers)
	for i, c := range creators {
		gens[i] = f.genesis(t, c, cid)
	}
	errs := race(func(i int) error { return f.as(creators[i]).Create(t.Context(), gens[i].raw, gens[i].grants) })
	winner := oneWinner(t, "Create", errs, session.ErrSessionExists)
	s := newSess(f, gens[winner])
	for i, err := range errs {
		var e *session.SessionExistsError
		if i != winner && (!errors.As(err, &e) || e.ID != s.id || e.ChannelCID != cid) {
			t.Errorf("%s: %#v, want a *SessionExistsError naming %s's session %v", creators[i], err, creators[winner], s.id)
		}
	}
	if d := s.diff(t); d != "" {
		t.Errorf("the channel's session (-want +got)\n%s", d)
	}
}

// testRaceResend sends one genesis, then one record, several times at
// once, as a client retrying on a slow network would: every call
// succeeds, and the session holds each once.
func testRaceResend(t *testing.T, f *fixture) {
	g := f.genesis(t, alice, f.channel(), bob)
	for i, err := range race(func(int) error { return f.as(alice).Create(t.Context(), g.raw, g.grants) }) {
		if err != nil {
			t.Fatalf("Create, racer %d: %v", i, err)
		}
	}
	s := newSess(f, g)
	st := s.next(t, alice, false, add(t, carol))
	for i, err := range race(func(int) error { return f.as(alice).Append(t.Context(), s.id, st.raw, st.grants) }) {
		if err != nil {
			t.Fatalf("Append, racer %d: %v", i, err)
		}
	}
	s.apply(st)
	if d := s.diff(t); d != "" {
		t.Errorf("the session after the race (-want +got)\n%s", d)
	}
}

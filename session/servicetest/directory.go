package servicetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// testDirectory publishes the card histories of erin, a user no other test
// has, step by step, and reads them as another user.
func testDirectory(t *testing.T, f *fixture) {
	const erin = "erin"
	e0, e1 := person(t, erin), person(t, "erin@1")
	fork, impostor := person(t, "erin@1-fork"), person(t, "erin-impostor")
	dir := f.env.Directory(erin)
	steps := []struct {
		name    string
		publish []*identity.Card
		want    error
		history []*identity.Card // nil: erin has no card
		reason  string
	}{
		{"nothing published", nil, nil, nil, "a user without a card"},
		{"generation 0", e0.Cards(), nil, e0.Cards(), "a user's first card"},
		{"generation 0 again", e0.Cards(), nil, e0.Cards(), "republishing is a no-op"},
		{"another generation 0", impostor.Cards(), session.ErrConflict, e0.Cards(),
			"a card that is not the published one of its generation: another identity claims erin"},
		{"generation 1", e1.Cards(), nil, e1.Cards(), "the history grows by a successor"},
		{"the older history", e0.Cards(), nil, e1.Cards(), "what is published already is skipped"},
		{"another generation 1", fork.Cards(), session.ErrConflict, e1.Cards(), "a fork of the history"},
		{"empty history", []*identity.Card{}, nil, e1.Cards(), "nothing to publish"},
	}
	for _, st := range steps {
		if st.publish != nil {
			if err := dir.PublishHistory(t.Context(), st.publish); !is(err, st.want) {
				t.Fatalf("%s: PublishHistory = %v, want %v (%s)", st.name, err, st.want, st.reason)
			}
		}
		reader := f.env.Directory(mallory)
		h, err := reader.History(t.Context(), erin)
		if st.history == nil {
			if !errors.Is(err, session.ErrUnknownUser) {
				t.Errorf("%s: History = %d cards, %v; want ErrUnknownUser (%s)", st.name, len(h), err, st.reason)
			}
		} else if err != nil || !slices.EqualFunc(h, st.history, (*identity.Card).Equal) {
			t.Errorf("%s: History = %d cards, %v; want generations 0 to %d (%s)", st.name, len(h), err, len(st.history)-1, st.reason)
		}
		latest, err := reader.Latest(t.Context(), []string{erin, alice, ghost})
		want := map[string]*identity.Card{alice: person(t, alice).Card()}
		if st.history != nil {
			want[erin] = st.history[len(st.history)-1]
		}
		if err != nil || !sameLatest(latest, want) {
			t.Errorf("%s: Latest = %v, %v; want %v (%s)", st.name, generations(latest), err, generations(want), st.reason)
		}
	}
}

func sameLatest(a, b map[string]*identity.Card) bool {
	if len(a) != len(b) {
		return false
	}
	for u, c := range b {
		if !c.Equal(a[u]) {
			return false
		}
	}
	return true
}

// generations describes a Latest answer: user, generation and
// fingerprint of each card.
func generations(m map[string]*identity.Card) []string {
	var out []string
	for u, c := range m {
		out = append(out, fmt.Sprintf("%s@%d:%s", u, c.Generation(), c.Fingerprint()))
	}
	slices.Sort(out)
	return out
}

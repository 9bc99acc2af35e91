package engine

import (
	"context"
	"sync"
	"time"

	"github.com/warren-runtime/warren/api"
)

// broker fans events out to subscribers and keeps the last few hundred
// for subscribers asking for events since a time.
type broker struct {
	mu   sync.Mutex
	subs map[chan api.Event]struct{}
	ring []api.Event
}

const eventHistory = 512

func newBroker() *broker { return &broker{subs: map[chan api.Event]struct{}{}} }

func (b *broker) publish(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ring = append(b.ring, ev)
	if len(b.ring) > eventHistory {
		b.ring = b.ring[len(b.ring)-eventHistory:]
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			// A subscriber that does not keep up loses events rather
			// than stall the engine; its buffer is generous.
		}
	}
}

func (b *broker) subscribe(ctx context.Context, since time.Time) <-chan api.Event {
	ch := make(chan api.Event, 1024)
	b.mu.Lock()
	if !since.IsZero() {
		for _, ev := range b.ring {
			if !ev.Time.Before(since) {
				ch <- ev
			}
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, ch)
		close(ch)
		b.mu.Unlock()
	}()
	return ch
}

package stream

import "time"

// The window is what a reconnecting client can resume from: each store's
// newest events, at most Window of them, none older than WindowAge, and
// all stores together within WindowBytes. The bounds hold whatever the
// traffic: a flood of events, or of store ids, evicts the oldest events
// (a client resuming from one gets a gap event), never grows memory.

// storeLog is one store's part of the window and its live streams.
type storeLog struct {
	id     string
	events []Event // oldest first, from events[head]
	head   int
	first  uint64 // sequence number of events[head]
	subs   map[*client]struct{}
}

func (l *storeLog) len() int { return len(l.events) - l.head }

// at is the i-th oldest event held.
func (l *storeLog) at(i int) Event { return l.events[l.head+i] }

func (l *storeLog) popFront() Event {
	e := l.events[l.head]
	l.events[l.head] = Event{} // let the payload go
	l.head++
	l.first++
	// Reuse the slice's front once half of it is dead.
	if l.head > 64 && l.head*2 >= len(l.events) {
		n := copy(l.events, l.events[l.head:])
		clear(l.events[n:])
		l.events, l.head = l.events[:n], 0
	}
	return e
}

// arrival is one event of the window in arrival order over all stores:
// the window evicts from its front.
type arrival struct {
	log *storeLog
	seq uint64
}

// size is what an event costs the window, roughly.
func size(e Event) int64 {
	return int64(len(e.Data) + len(e.ID) + len(e.Type) + len(e.StoreID) + 64)
}

// keep adds e to its store's window and evicts what the bounds no longer
// allow. The caller holds h.mu.
func (h *Hub) keep(log *storeLog, e Event) {
	seq := log.first + uint64(log.len())
	log.events = append(log.events, e)
	h.bytes += size(e)
	h.arrivals = append(h.arrivals, arrival{log: log, seq: seq})
	if log.len() > h.cfg.Window {
		h.bytes -= size(log.popFront())
	}
	h.evict(e.At)
}

// evict drops the oldest events while the window is over its bytes or
// they are older than WindowAge. The caller holds h.mu.
func (h *Hub) evict(now time.Time) {
	for h.arrivalsHead < len(h.arrivals) {
		a := h.arrivals[h.arrivalsHead]
		if a.seq >= a.log.first { // still held (else its store's count bound took it)
			if h.bytes <= h.cfg.WindowBytes && now.Sub(a.log.at(0).At) <= h.cfg.WindowAge {
				break
			}
			h.bytes -= size(a.log.popFront())
			h.forgetIfIdle(a.log)
		}
		h.arrivals[h.arrivalsHead] = arrival{}
		h.arrivalsHead++
	}
	if h.arrivalsHead > 1024 && h.arrivalsHead*2 >= len(h.arrivals) {
		n := copy(h.arrivals, h.arrivals[h.arrivalsHead:])
		clear(h.arrivals[n:])
		h.arrivals, h.arrivalsHead = h.arrivals[:n], 0
	}
	if h.metrics != nil {
		h.metrics.WindowBytes.Set(float64(h.bytes))
	}
}

// forgetIfIdle removes a store that holds no event and no stream, so
// that store ids seen once cost nothing for ever. The caller holds h.mu.
func (h *Hub) forgetIfIdle(log *storeLog) {
	if log.len() == 0 && len(log.subs) == 0 && h.stores[log.id] == log {
		delete(h.stores, log.id)
	}
}

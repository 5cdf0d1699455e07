package stream

import (
	"fmt"
	"testing"
)

func TestStoreIDsSeenOnceCostNothingForEver(t *testing.T) {
	h := New(Config{WindowBytes: 64 << 10, Window: 3})
	for i := range 50000 {
		h.Publish(Event{ID: fmt.Sprint(i), StoreID: fmt.Sprint("store-", i), Type: "order.placed", Data: []byte(`{}`)})
	}
	for i := range 10 { // one busy store: its count bound applies
		h.Publish(Event{ID: fmt.Sprint("busy-", i), StoreID: "busy", Type: "order.placed", Data: []byte(`{}`)})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bytes > 64<<10 {
		t.Errorf("window bytes %d over the budget", h.bytes)
	}
	held := 0
	for _, l := range h.stores {
		held += l.len()
		if l.len() == 0 {
			t.Errorf("store %s is kept with nothing in it", l.id)
		}
	}
	if got := h.stores["busy"].len(); got != 3 {
		t.Errorf("the busy store keeps %d events, want its bound of 3", got)
	}
	if live := len(h.arrivals) - h.arrivalsHead; live < held || live > 2*held+1024 {
		t.Errorf("%d arrivals tracked for %d events held", live, held)
	}
	var sum int64
	for _, l := range h.stores {
		for i := range l.len() {
			sum += size(l.at(i))
		}
	}
	if sum != h.bytes {
		t.Errorf("the window counts %d bytes, holds %d", h.bytes, sum)
	}
}

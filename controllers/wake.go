package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// Wake asks a reconciler to reconcile an object now, and to read it from
// the API server rather than its cache: whoever wakes it has just written
// the object's status, and a cached copy from before that write would look
// already reconciled, so nothing would be written back.
type Wake struct {
	c     chan event.GenericEvent
	fresh sync.Map // types.NamespacedName → struct{}
}

// NewWake returns a Wake that holds up to size pending wake-ups.
func NewWake(size int) *Wake { return &Wake{c: make(chan event.GenericEvent, size)} }

// Send wakes the reconciler for obj; it reports false when the queue is
// full (the caller asks again later).
func (w *Wake) Send(obj client.Object) bool {
	w.fresh.Store(client.ObjectKeyFromObject(obj), struct{}{})
	select {
	case w.c <- event.GenericEvent{Object: obj}:
		return true
	default:
		return false
	}
}

// takeFresh reports whether key's next read must bypass the cache, and
// clears the mark.
func (w *Wake) takeFresh(key types.NamespacedName) bool {
	if w == nil {
		return false
	}
	_, ok := w.fresh.LoadAndDelete(key)
	return ok
}

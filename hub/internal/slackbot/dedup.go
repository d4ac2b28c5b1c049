package slackbot

import (
	"container/list"
	"sync"
)

// seenSet remembers the most recent event ids so that Slack's retries of
// an event (same event_id, new envelope) are answered once. It is bounded:
// the oldest id is forgotten when a new one does not fit. Slack retries
// within minutes, so a thousand ids cover any realistic burst.
type seenSet struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = newest
	ids   map[string]*list.Element
}

func newSeenSet(max int) *seenSet {
	return &seenSet{max: max, order: list.New(), ids: make(map[string]*list.Element, max)}
}

// firstTime records id and reports whether it had not been seen. An empty
// id is never a duplicate.
func (s *seenSet) firstTime(id string) bool {
	if id == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.ids[id]; ok {
		s.order.MoveToFront(e)
		return false
	}
	s.ids[id] = s.order.PushFront(id)
	for s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.ids, old.Value.(string))
	}
	return true
}

func (s *seenSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

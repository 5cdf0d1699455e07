package store

import (
	"fmt"
	"testing"
)

// TestSharesFollowDemand: the parts a limit is split into, by demand,
// among the replicas with traffic, each computing its own from the same
// rows.
func TestSharesFollowDemand(t *testing.T) {
	for _, c := range []struct {
		limit   int
		demands map[string]int
		want    map[string]int
	}{
		// The case of issue 15: only one replica has the work.
		{2, map[string]int{"a": 0, "b": 7, "c": 0}, map[string]int{"a": 0, "b": 2, "c": 0}},
		// No demand anywhere: equal parts, the first names taking the rest.
		{2, map[string]int{"a": 0, "b": 0, "c": 0}, map[string]int{"a": 1, "b": 1, "c": 0}},
		// Every replica with demand gets one while the limit allows, the
		// rest in proportion.
		{10, map[string]int{"a": 1, "b": 9, "c": 0}, map[string]int{"a": 1, "b": 9, "c": 0}},
		{10, map[string]int{"a": 30, "b": 10, "c": 10}, map[string]int{"a": 6, "b": 2, "c": 2}},
		{3, map[string]int{"a": 1, "b": 100, "c": 1}, map[string]int{"a": 1, "b": 1, "c": 1}},
		{5, map[string]int{"a": 1, "b": 100, "c": 1}, map[string]int{"a": 1, "b": 3, "c": 1}},
		// Fewer slots than replicas with demand: the largest demands first.
		{2, map[string]int{"a": 1, "b": 5, "c": 3}, map[string]int{"a": 0, "b": 1, "c": 1}},
		{1, map[string]int{"a": 4, "b": 4}, map[string]int{"a": 1, "b": 0}},
	} {
		t.Run(fmt.Sprint(c.limit, c.demands), func(t *testing.T) {
			sum := 0
			for me, want := range c.want {
				var rows []leaseRow
				for r, d := range c.demands {
					rows = append(rows, leaseRow{replica: r, demand: d})
				}
				got := part(c.limit, me, rows)
				if got != want {
					t.Errorf("%s's part %d, want %d", me, got, want)
				}
				sum += got
			}
			if sum != c.limit {
				t.Errorf("the parts add up to %d; the limit is %d", sum, c.limit)
			}
		})
	}
}

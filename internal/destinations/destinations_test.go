package destinations

import "testing"

func TestMaskKeepsOnlyTheLastFour(t *testing.T) {
	for in, want := range map[string]string{"AKIAIOSFODNN7EXAMPLE": "****MPLE", "abc": "****", "": "****", "abcde": "****bcde"} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

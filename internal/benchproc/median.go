package benchproc

import (
	"math"
	"slices"
)

// Median is the middle of v, the mean of the two middle values when v has
// an even number of them; NaN (for floats; 0 for integers) when v is empty.
// v is not changed.
func Median[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		var zero T
		if f, ok := any(&zero).(*float64); ok {
			*f = math.NaN()
		}
		return zero
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

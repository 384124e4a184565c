package listentry_test

import (
	"errors"
	"fmt"

	"github.com/ospreysec/osprey/pkg/listentry"
)

var errBad = errors.New("not a domain")

func Example() {
	err := error(listentry.Errors[*listentry.Error]{{Index: 2, Entry: "exa mple.com", Err: errBad}})
	fmt.Println(err)
	fmt.Println(errors.Is(err, errBad))
	// Output:
	// entry 2 "exa mple.com": not a domain
	// true
}

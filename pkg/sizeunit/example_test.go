package sizeunit_test

import (
	"fmt"

	"github.com/ospreysec/osprey/pkg/sizeunit"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func ExampleBytes() {
	u, err := sizeunit.ParseUnit("mb")
	if err != nil {
		panic(err)
	}
	n, err := sizeunit.Bytes(25, u)
	fmt.Println(n, err)
	fmt.Println(sizeunit.Format(n))

	_, err = sizeunit.Bytes(2, sizeunit.GB)
	fmt.Println(err)
	// Output:
	// 26214400 <nil>
	// 25 MB
	// 2 GB: size exceeds the maximum of 1 GB
}

func ExampleLimit() {
	for _, l := range []*ospreyv1.SizeLimit{
		{Unlimited: true},
		{Value: 10, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
	} {
		n, _ := sizeunit.Limit(l)
		fmt.Printf("%s: %d bytes\n", sizeunit.FormatLimit(l), n)
	}
	// Output:
	// unlimited: 1073741824 bytes
	// 10 MB: 10485760 bytes
}

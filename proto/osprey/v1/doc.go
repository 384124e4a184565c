// Package ospreyv1 is the Go code generated from the protobuf definitions
// next to it: the configuration kept in etcd, the sensor protocol (enroll,
// the Connect stream, uploads), and the records of messages and alerts. Only
// this file is written by hand; `make proto` regenerates the rest.
package ospreyv1

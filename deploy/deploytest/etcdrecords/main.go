// Command etcdrecords prints the message records a central node keeps in
// etcd, one JSON object a line. The Docker tests run it in a central
// container's network namespace (etcd's client port is on its loopback) to
// count recorded messages when the node's API has no messages route.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func main() {
	endpoints := flag.String("endpoints", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
	prefix := flag.String("prefix", "/osprey/v1/messages/", "key prefix of the message records")
	flag.Parse()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, *prefix, clientv3.WithPrefix())
	if err != nil {
		log.Fatal(err)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, kv := range resp.Kvs {
		var rec ospreyv1.MessageRecord
		if err := proto.Unmarshal(kv.Value, &rec); err != nil {
			log.Fatalf("%s: %v", kv.Key, err)
		}
		enc.Encode(map[string]any{
			"message_id":  rec.GetMessageId(),
			"sensor_id":   rec.GetSensorId(),
			"node":        rec.GetNode(),
			"envelope":    map[string]string{"mail_from": rec.GetEnvelope().GetMailFrom()},
			"uploaded_at": rec.GetUploadedAt().AsTime(),
		})
	}
}

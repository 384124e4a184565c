package store

import (
	"context"
	"errors"
	"fmt"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Sensors managed from the PCN (central/remotesensors). On a PCN: the last
// sensor list each SCN sent, one key per SCN. On an SCN: whether its
// administrator lets the PCN write its sensors' settings.

// PutServerSensors stores the sensor list of SCN list.ServerId.
func (s *Store) PutServerSensors(ctx context.Context, list *ospreyv1.RemoteSensorList) error {
	id := list.GetServerId()
	if err := CheckID("server", id); err != nil {
		return err
	}
	b, err := encode(list)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, serverSensorsKey(id), string(b)); err != nil {
		return etcdErr("put", serverSensorsKey(id), err)
	}
	return nil
}

// ServerSensors returns the last sensor list SCN id sent; nil when it
// never sent one. It does not check the SCN's scope: GetServer does.
func (s *Store) ServerSensors(ctx context.Context, id string) (*ospreyv1.RemoteSensorList, error) {
	if err := CheckID("server", id); err != nil {
		return nil, err
	}
	l := new(ospreyv1.RemoteSensorList)
	if _, err := s.get(ctx, serverSensorsKey(id), l); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("server %q sensors: %w", id, err)
	}
	return l, nil
}

// SensorManagement returns the SCN administrator's choice about the PCN's
// writes, the default (writes allowed) when never made.
func (s *Store) SensorManagement(ctx context.Context) (*ospreyv1.SensorManagement, error) {
	m := new(ospreyv1.SensorManagement)
	if _, err := s.get(ctx, sensorManagementKey, m); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("sensor management: %w", err)
	}
	return m, nil
}

// PutSensorManagement records the SCN administrator's choice.
func (s *Store) PutSensorManagement(ctx context.Context, m *ospreyv1.SensorManagement) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, sensorManagementKey, string(b)); err != nil {
		return etcdErr("put", sensorManagementKey, err)
	}
	return nil
}

// SensorManagementKey is the key of the SCN's choice, for a watch.
func SensorManagementKey() string { return sensorManagementKey }

// SensorListPrefixes are the key prefixes under which a change may change
// what an SCN's sensor list shows: the sensors' records and
// configurations, their status, and the SCN's choice about its PCN.
func SensorListPrefixes() []string {
	return []string{tenantsPrefix, statusPrefix, lastSeenPrefix, sensorManagementKey}
}

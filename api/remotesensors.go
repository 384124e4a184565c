package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// ServerSensors is an SCN's sensors as its PCN shows them (GET
// /api/v1/servers/{id}/sensors): the last list the SCN sent, when its link
// came up and whenever a sensor changed.
type ServerSensors struct {
	Server string `json:"server"`
	Tenant string `json:"tenant,omitempty"`
	// Online says whether the SCN's link is up; when it is not, the list is
	// the last one the SCN sent.
	Online bool `json:"online"`
	// ReceivedAt is when the PCN got the list; absent when the SCN never
	// sent one (it never linked, or runs a version without the feature).
	ReceivedAt *time.Time `json:"received_at,omitempty"`
	// WritesRefused says that the SCN's administrator switched off sensor
	// management from the PCN: the PCN's writes are refused (403).
	WritesRefused bool `json:"writes_refused"`
	// Truncated says the SCN has more sensors than the list carries.
	Truncated bool           `json:"truncated,omitempty"`
	Sensors   []RemoteSensor `json:"sensors"`
}

// RemoteSensor is one sensor of an SCN, as the SCN's own sensors page
// shows it.
type RemoteSensor struct {
	ID              string      `json:"id"`
	Name            string      `json:"name"`
	Tenant          string      `json:"tenant"`
	State           SensorState `json:"state"`
	Online          bool        `json:"online"`
	Node            string      `json:"node,omitempty"`
	Type            SensorType  `json:"type,omitempty"`
	SoftwareVersion string      `json:"software_version,omitempty"`
	// ConfigVersion is the version of the configuration the SCN stores for
	// the sensor, AppliedVersion the last one the sensor acknowledged (ACK),
	// LastError why it refused the last one it refused (NACK).
	ConfigVersion  int64  `json:"config_version"`
	AppliedVersion int64  `json:"applied_version"`
	LastError      string `json:"last_error,omitempty"`
	// Config sums those up: applied, pending or refused.
	Config    RemoteConfigState `json:"config"`
	Healthy   bool              `json:"healthy"`
	SMTPState IntegrationState  `json:"smtp_state,omitempty"`
	POP3State IntegrationState  `json:"pop3_state,omitempty"`
	// Gateway says the sensor runs as a mail gateway.
	Gateway bool `json:"gateway,omitempty"`
}

// RemoteConfigState is where a sensor stands with its configuration.
type RemoteConfigState string

// The states of a sensor's configuration.
const (
	// ConfigApplied: the sensor acknowledged the stored version (ACK).
	ConfigApplied RemoteConfigState = "applied"
	// ConfigPending: the sensor has not answered the stored version yet.
	ConfigPending RemoteConfigState = "pending"
	// ConfigRefused: the sensor refused a version since the one it applied
	// (NACK); LastError says why.
	ConfigRefused RemoteConfigState = "refused"
)

// SensorManagement is an SCN administrator's choice about its PCN (GET and
// PUT /api/v1/pcn/sensor-management).
type SensorManagement struct {
	// PCNWrites says whether the PCN may write the SMTP, gateway and POP3
	// settings of this node's sensors. The PCN lists them either way.
	PCNWrites bool       `json:"pcn_writes"`
	ChangedBy string     `json:"changed_by,omitempty"`
	ChangedAt *time.Time `json:"changed_at,omitempty"`
}

func serverPath(id, sub string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("api: invalid server id %q", id)
	}
	return "/api/v1/servers/" + url.PathEscape(id) + "/" + sub, nil
}

// ServerSensors lists the sensors of SCN id, on its PCN.
func (c *Client) ServerSensors(ctx context.Context, id string) (*ServerSensors, error) {
	p, err := serverPath(id, "sensors")
	if err != nil {
		return nil, err
	}
	var out ServerSensors
	if _, err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func serverSensorPath(server, sensor, doc string) (string, error) {
	if sensor == "" || sensor == "." || sensor == ".." {
		return "", fmt.Errorf("api: invalid sensor id %q", sensor)
	}
	return serverPath(server, "sensors/"+url.PathEscape(sensor)+"/"+doc)
}

// ServerSensorSMTP reads the SMTP integration (gateway included) of sensor
// of SCN server, through the PCN, with its version on the SCN.
func (c *Client) ServerSensorSMTP(ctx context.Context, server, sensor string) (*SMTPIntegration, int64, error) {
	var out SMTPIntegration
	v, err := c.serverSensorGet(ctx, server, sensor, "smtp", &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

// PutServerSensorSMTP writes the SMTP integration of sensor of SCN server,
// through the PCN: the SCN validates it as its own API does (an *Error of
// status 400 with the fields), and with version not 0 writes it only if its
// stored version is still version (else 409).
func (c *Client) PutServerSensorSMTP(ctx context.Context, server, sensor string, cfg *SMTPIntegration, version int64) (*SMTPIntegration, int64, error) {
	var out SMTPIntegration
	v, err := c.serverSensorPut(ctx, server, sensor, "smtp", cfg, version, &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

// ServerSensorPOP3 reads the POP3 integration of sensor of SCN server.
func (c *Client) ServerSensorPOP3(ctx context.Context, server, sensor string) (*POP3Integration, int64, error) {
	var out POP3Integration
	v, err := c.serverSensorGet(ctx, server, sensor, "pop3", &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

// PutServerSensorPOP3 writes the POP3 integration of sensor of SCN server,
// as PutServerSensorSMTP does.
func (c *Client) PutServerSensorPOP3(ctx context.Context, server, sensor string, cfg *POP3Integration, version int64) (*POP3Integration, int64, error) {
	var out POP3Integration
	v, err := c.serverSensorPut(ctx, server, sensor, "pop3", cfg, version, &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

func (c *Client) serverSensorGet(ctx context.Context, server, sensor, doc string, out any) (int64, error) {
	p, err := serverSensorPath(server, sensor, doc)
	if err != nil {
		return 0, err
	}
	return c.getVersionedAt(ctx, p, out)
}

func (c *Client) serverSensorPut(ctx context.Context, server, sensor, doc string, in any, version int64, out any) (int64, error) {
	p, err := serverSensorPath(server, sensor, doc)
	if err != nil {
		return 0, err
	}
	return c.putVersionedAt(ctx, p, in, version, out)
}

// SensorManagement reads this node's choice about its PCN's writes.
func (c *Client) SensorManagement(ctx context.Context) (*SensorManagement, error) {
	var out SensorManagement
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/pcn/sensor-management", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutSensorManagement lets the PCN write this node's sensors' settings, or
// not.
func (c *Client) PutSensorManagement(ctx context.Context, m SensorManagement) (*SensorManagement, error) {
	var out SensorManagement
	if _, err := c.do(ctx, http.MethodPut, "/api/v1/pcn/sensor-management", nil, m, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
